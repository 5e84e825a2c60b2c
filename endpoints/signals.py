"""Every committed change to patient data requests a recompute of its center and the pool."""
from django.db.models.signals import post_save, pre_delete

from registry.centers.models import LabRange
from registry.clinical import models as clinical

from . import services

WATCHED = (
    clinical.Patient, clinical.PriorTreatment, clinical.TreatmentEpisode, clinical.DoseChange,
    clinical.Visit, clinical.AdverseEvent, LabRange,
)


def record_changed(sender, instance, raw=False, **kwargs):
    if raw:  # loaddata
        return
    services.note_change(instance.center_id)


def connect():
    for model in WATCHED:
        post_save.connect(record_changed, sender=model, dispatch_uid=f"recompute-save-{model.__name__}")
        pre_delete.connect(record_changed, sender=model, dispatch_uid=f"recompute-delete-{model.__name__}")
