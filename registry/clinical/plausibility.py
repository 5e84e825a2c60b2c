"""Automatic plausibility checks: implausible combinations raise a data query on the record.

Each rule reads like the monitoring plan. A rule that fires opens one query per record (not
one per save); once the data are corrected, the open query closes itself with a note.
"""
from dataclasses import dataclass

from django.contrib.contenttypes.models import ContentType
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from endpoints.compute.vocabulary import SCORE_CODES


@dataclass(frozen=True)
class Rule:
    code: str
    model: str
    field: str
    applies: object
    message: object


def _high_dose_off_label(dose, drug):
    return dose is not None and dose == 45 and drug != "upadacitinib"


RULES = (
    Rule("iga0_easi_above_7", "visit", "easi",
         lambda v: v.iga == 0 and v.easi is not None and v.easi > 7,
         _("IGA 0 (clear) with EASI above 7: please check both scores.")),
    Rule("easi_above_50_bsa_below_10", "visit", "bsa",
         lambda v: v.easi is not None and v.bsa is not None and v.easi > 50 and v.bsa < 10,
         _("EASI above 50 with BSA under 10%: please check both scores.")),
    Rule("visit_without_score", "visit", "",
         lambda v: all(getattr(v, code) is None for code in SCORE_CODES),
         _("This visit has no score: please complete it or delete the visit.")),
    Rule("high_dose_outside_upadacitinib", "treatmentepisode", "start_dose_mg",
         lambda e: _high_dose_off_label(e.start_dose_mg, e.drug),
         _("A 45 mg daily dose is only expected with upadacitinib: please check drug and dose.")),
    Rule("high_dose_outside_upadacitinib", "dosechange", "dose_mg",
         lambda c: _high_dose_off_label(c.dose_mg, c.episode.drug),
         _("A 45 mg daily dose is only expected with upadacitinib: please check drug and dose.")),
)


def check_record(record):
    """Open or close the automatic queries of ``record`` after it was saved."""
    from .models import DataQuery

    rules = [rule for rule in RULES if rule.model == record._meta.model_name]
    if not rules:
        return
    content_type = ContentType.objects.get_for_model(record)
    open_queries = {
        query.rule: query
        for query in DataQuery.objects.filter(
            content_type=content_type, object_id=record.pk, rule__in=[r.code for r in rules]
        ).exclude(status=DataQuery.Status.CLOSED)
    }
    for rule in rules:
        fires = rule.applies(record)
        query = open_queries.get(rule.code)
        if fires and query is None:
            DataQuery.objects.create(
                patient=record.signed_patient, content_type=content_type, object_id=record.pk,
                field_name=rule.field, text=str(rule.message), rule=rule.code,
            )
        elif not fires and query is not None:
            query.answer = query.answer or str(_("Corrected: the check no longer applies."))
            query.status, query.closed_at = DataQuery.Status.CLOSED, timezone.now()
            query.save()
