"""Celery tasks: thin wrappers around ``endpoints.services``."""
from celery import shared_task

from endpoints import services


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
