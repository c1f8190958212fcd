"""Thin Celery tasks: each is one call to a service (imported inside the body)."""

from __future__ import annotations

from celery import shared_task

from tokens.domain import lifecycle


@shared_task(name="tokens.tasks.expire_timed_out_tokens", ignore_result=True)
def expire_timed_out_tokens() -> int:

    return lifecycle.token_expire_due()


@shared_task(name="tokens.tasks.deliver_outbox", ignore_result=True)
def deliver_outbox() -> int:
    """Deliver what is due now and return. Nothing schedules it any more: the delivery process
    (``manage.py deliver``, started beside the worker) does the delivering; kept so a message
    already queued under this name is harmless, and for scripts and tests."""
    from tokens.delivery import outbox

    return outbox.deliver_due()
