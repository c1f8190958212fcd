"""The canonical Celery app (celery/celery examples/django/proj/celery.py)."""

from __future__ import annotations

import os
from functools import cached_property
from typing import Any

from celery import Celery
from celery.signals import after_setup_logger, after_setup_task_logger, task_postrun, task_prerun

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "waitpoints_site.settings")


class App(Celery):
    """Celery, with the worker as this service runs it (waitpoints_site/worker.py says why)."""

    @cached_property
    def Worker(self) -> Any:  # noqa: N802 - Celery's name
        return self.subclass_with_self("waitpoints_site.worker:Worker")


app = App("waitpoints_site")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@after_setup_logger.connect
@after_setup_task_logger.connect
def _filter_celery_logs(logger: object = None, **kwargs: object) -> None:
    # Celery replaces Django's handlers: mask secrets and collapse outage floods on its own too.
    from tokens.platform.logging import install_on_celery_handlers

    install_on_celery_handlers(logger, **kwargs)  # type: ignore[arg-type]


def _add_worker_steps() -> None:
    from tokens.platform.delivery import DeliveryProcess
    from tokens.platform.heartbeat import WorkerHeartbeat

    app.steps["worker"].add(WorkerHeartbeat)
    app.steps["worker"].add(DeliveryProcess)  # manage.py deliver, beside the worker


_add_worker_steps()


@task_prerun.connect
@task_postrun.connect
def _close_old_connections(**_kwargs: object) -> None:
    # Django only recycles connections at request boundaries; a long-lived worker must do it
    # around each task or it keeps using connections the database has dropped.
    from django.db import close_old_connections

    close_old_connections()
