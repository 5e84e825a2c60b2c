from .adverse_events import AdverseEvent
from .base import StaleRecord
from .episodes import DoseChange, TreatmentEpisode
from .patients import Patient, PriorTreatment
from .queries import DataQuery
from .signatures import Signature
from .visits import Visit

__all__ = [
    "AdverseEvent", "DataQuery", "DoseChange", "Patient", "PriorTreatment", "Signature",
    "StaleRecord", "TreatmentEpisode", "Visit",
]
