"""Celery tasks: thin wrappers around ``endpoints.services``."""
import logging

from celery import shared_task
from celery.signals import worker_ready

from endpoints import services

logger = logging.getLogger(__name__)


@shared_task(
    bind=True, acks_late=True, reject_on_worker_lost=True, autoretry_for=(Exception,),
    retry_backoff=2, retry_backoff_max=60, max_retries=8,
)
def recompute_scope_task(self, scope):
    """Recompute one scope's snapshot; on failure the previous snapshot stays and it retries."""
    snapshot = services.run_recompute(scope)
    return {"scope": scope, "computed_at": snapshot.computed_at.isoformat()}


@shared_task
def recompute_all_scopes():
    """Nightly: every scope from one snapshot of the registry, whatever is pending."""
    return services.recompute_all_scopes()


@shared_task
def requeue_pending_scopes():
    """Every minute: queue scopes whose changes wait with no live task."""
    return services.requeue_pending_scopes()


@worker_ready.connect
def requeue_pending_at_start(**kwargs):
    """A worker (re)starting, connected to the broker: whatever is pending is queued now.

    After a worker is killed, the tasks it had taken are gone with it until the broker's
    visibility timeout; after a broker restart that lost its queue, so are the queued ones.
    Their scopes still look queued, so the minute sweep would wait ``LOST_TASK_SECONDS``
    first. A task queued twice costs one fingerprint check.
    """
    try:
        services.requeue_pending_scopes(lost_after=0)
    except Exception:  # noqa: BLE001 - never keep the worker from starting; the sweep remains
        logger.exception("could not requeue the pending recomputes at worker start")
