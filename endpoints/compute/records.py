"""Plain records the endpoint computation reads.

The ORM (``endpoints.selectors``), the dataset bundle reader (``endpoints.compute.bundle``) and
the tests all build these, so the computation never touches the database and gives the same
answer wherever its input comes from. Slotted dataclasses: a 100,000-patient cohort holds about
a million visits in memory during a recompute.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import date


@dataclass(frozen=True, slots=True)
class Center:
    code: str
    #: analyte -> (lower limit of normal or None, upper limit of normal or None)
    lab_ranges: dict[str, tuple[float | None, float | None]] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Patient:
    code: str
    center_code: str
    sex: str
    birth_year: int | None = None
    height_cm: float | None = None
    weight_kg: float | None = None
    ad_onset_age: float | None = None
    ad_subtype: str | None = None
    special_areas: frozenset[str] = frozenset()
    atopic_comorbidities: frozenset[str] = frozenset()
    autoimmune_comorbidities: frozenset[str] = frozenset()
    cv_risk_factors: frozenset[str] = frozenset()
    neoplasia_last_5y: frozenset[str] = frozenset()
    enrolled_on: date | None = None
    #: drug codes of prior systemic treatments (prior_treatments.csv), distinct
    prior_drugs: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class DoseChange:
    date: date
    dose_mg: float
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class Episode:
    code: str
    patient_code: str
    drug: str
    start_date: date
    start_dose_mg: float
    end_date: date | None = None
    end_reason: str | None = None
    #: in date order
    dose_changes: tuple[DoseChange, ...] = ()


@dataclass(slots=True)
class Visit:
    """Not frozen, unlike the other records, though as read-only as they are: a frozen
    dataclass sets each field through ``object.__setattr__``, five times the cost of building
    it, and a registry-wide read builds about a million visits."""

    patient_code: str
    date: date
    iga: int | None = None
    easi: float | None = None
    scorad: float | None = None
    bsa: float | None = None
    pruritus_nrs: int | None = None
    sleep_nrs: int | None = None
    dlqi: int | None = None
    poem: int | None = None
    #: analyte -> value, only analytes measured at this visit
    labs: dict[str, float] = field(default_factory=dict)
    #: clinical term -> True (yes) / False (no), only items answered at this visit
    checklist: dict[str, bool] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class AdverseEvent:
    patient_code: str
    term: str
    onset_date: date
    episode_code: str | None = None
    end_date: date | None = None
    severity: str | None = None
    serious: bool | None = None


@dataclass(slots=True)
class Cohort:
    """Everything one scope's computation needs, indexed by patient."""

    centers: dict[str, Center]
    patients: dict[str, Patient]
    episodes: list[Episode]
    #: patient code -> visits in date order
    visits: dict[str, list[Visit]]
    #: patient code -> logged adverse events
    adverse_events: dict[str, list[AdverseEvent]]

    @classmethod
    def from_records(cls, *, centers=(), patients=(), episodes=(), visits=(),
                     adverse_events=()) -> Cohort:
        """A cohort from flat lists of records, indexed the way the computation reads them
        (visits sorted by date per patient, dose changes sorted per episode). For callers that
        hold plain lists: tests, selectors."""
        by_patient: dict[str, list[Visit]] = {patient.code: [] for patient in patients}
        for visit in visits:
            by_patient.setdefault(visit.patient_code, []).append(visit)
        for patient_visits in by_patient.values():
            patient_visits.sort(key=lambda visit: visit.date)
        events: dict[str, list[AdverseEvent]] = {}
        for event in adverse_events:
            events.setdefault(event.patient_code, []).append(event)
        return cls(
            centers={center.code: center for center in centers},
            patients={patient.code: patient for patient in patients},
            episodes=[_with_dose_changes_in_order(episode) for episode in episodes],
            visits=by_patient,
            adverse_events=events,
        )


def _with_dose_changes_in_order(episode: Episode) -> Episode:
    ordered = tuple(sorted(episode.dose_changes, key=lambda change: change.date))
    return episode if ordered == episode.dose_changes else replace(episode, dose_changes=ordered)
