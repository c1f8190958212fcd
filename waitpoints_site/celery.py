"""The canonical Celery app (celery/celery examples/django/proj/celery.py)."""

from __future__ import annotations

import os

from celery import Celery
from celery.signals import after_setup_logger, after_setup_task_logger, task_postrun, task_prerun

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "waitpoints_site.settings")

app = Celery("waitpoints_site")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@after_setup_logger.connect
@after_setup_task_logger.connect
def _filter_celery_logs(logger: object = None, **kwargs: object) -> None:
    # Celery replaces Django's handlers: mask secrets and collapse outage floods on its own too.
    from tokens.platform.logging import install_on_celery_handlers

    install_on_celery_handlers(logger, **kwargs)  # type: ignore[arg-type]


def _add_worker_heartbeat() -> None:
    from tokens.platform.heartbeat import WorkerHeartbeat

    app.steps["worker"].add(WorkerHeartbeat)


_add_worker_heartbeat()


@task_prerun.connect
@task_postrun.connect
def _close_old_connections(**_kwargs: object) -> None:
    # Django only recycles connections at request boundaries; a long-lived worker must do it
    # around each task or it keeps using connections the database has dropped.
    from django.db import close_old_connections

    close_old_connections()
