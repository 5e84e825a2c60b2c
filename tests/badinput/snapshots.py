"""Database snapshots: what bad input must leave unchanged."""


def snapshot_models():
    """Every model whose rows bad input must not change, with its audit history."""
    from registry.centers.models import Center, LabRange
    from registry.clinical.models import (
        AdverseEvent, DataQuery, DoseChange, Patient, PriorTreatment, Signature,
        TreatmentEpisode, Visit,
    )

    models = [
        Center, LabRange, Patient, PriorTreatment, TreatmentEpisode, DoseChange, Visit,
        AdverseEvent, Signature, DataQuery,
    ]
    history = [model.history.model for model in models if hasattr(model, "history")]
    return models + history


def row_counts():
    """Rows per model (and per audit-history model) now, in one query."""
    from django.db import connection

    models = snapshot_models()
    quote = connection.ops.quote_name
    counts = ", ".join(f"(SELECT COUNT(*) FROM {quote(model._meta.db_table)})" for model in models)
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {counts}")
        row = cursor.fetchone()
    return {model._meta.label: count for model, count in zip(models, row)}


def row_values():
    """Every row's values of the record models (not their history, which only grows and is
    counted): an edit that slipped through changes one of them."""
    return {
        model._meta.label: list(model._base_manager.order_by("pk").values())
        for model in snapshot_models()
        if not model.__name__.startswith("Historical")
    }
