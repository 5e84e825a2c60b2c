from .adverse_events import AdverseEvent
from .episodes import DoseChange, TreatmentEpisode
from .patients import Patient, PriorTreatment
from .visits import Visit

__all__ = ["AdverseEvent", "DoseChange", "Patient", "PriorTreatment", "TreatmentEpisode", "Visit"]
