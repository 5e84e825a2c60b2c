"""Celery tasks: thin wrappers around ``registry.datasets.exports``."""
from celery import shared_task

from . import exports


@shared_task(acks_late=True, reject_on_worker_lost=True)
def export_dataset_task(record_id):
    """Write one requested export (see ``exports.run_export``)."""
    return exports.run_export(record_id).status


@shared_task
def delete_expired_exports():
    """Celery beat: delete export files past ``settings.EXPORT_EXPIRY``."""
    return exports.delete_expired_exports()
