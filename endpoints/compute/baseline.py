"""Baseline characteristics of the patients in scope (000, Table 1).

Patients, not episodes, are the units. Decisions where endpoints.md leaves room (also listed in
the report to the lead):

- Groups: a patient is in the group ``all`` once, and in the start-dose group of each of their
  episodes (so in several groups when they had several episodes with different start doses).
  A patient with no episode is in ``all`` only.
- Categorical rows: every patient of the group is in the denominator (an empty list cell means
  none of the items; a missing subtype is simply not counted). Continuous rows (age, BMI): n is
  the number of patients with a value, since a median over fewer patients than n would misstate
  the figure.
- ``age`` = year of ``enrolled_on`` − ``birth_year``; missing when either is. ``bmi`` = weight
  / height², unrounded.
- ``prior_<drug>`` and ``prior_advanced`` read prior_treatments.csv only (treatments before
  the registry episodes), as 000's "previous systemic treatments".
- List codes outside the vocabulary still make the list's "any" row but get no row of their
  own.
"""
from __future__ import annotations

from functools import partial
from operator import attrgetter

from .records import Patient
from .tally import BINARY, CONTINUOUS, TableSpec
from .vocabulary import (
    AD_SUBTYPES,
    ADVANCED_DRUGS,
    COMORBIDITY_LISTS,
    DRUGS,
    SEXES,
    SPECIAL_AREAS,
)

#: The "any" row of each list column (endpoints.md spells them in the singular).
ANY_OF_LIST = {
    "atopic_comorbidities": "any_atopic_comorbidity",
    "autoimmune_comorbidities": "any_autoimmune_comorbidity",
    "cv_risk_factors": "any_cv_risk_factor",
    "neoplasia_last_5y": "any_neoplasia_last_5y",
}


def list_item_endpoint(column: str, code: str) -> str:
    """A comorbidity code as a row name; ``other`` is ambiguous across lists, so it carries
    the column name (``neoplasia_last_5y_other``)."""
    return f"{column}_other" if code == "other" else code


SPEC = TableSpec("baseline", [
    ("age", "", CONTINUOUS),
    *((f"sex_{sex}", "", BINARY) for sex in SEXES),
    ("bmi", "", CONTINUOUS),
    *((f"subtype_{subtype}", "", BINARY) for subtype in AD_SUBTYPES),
    ("any_special_area", "", BINARY),
    *((area, "", BINARY) for area in SPECIAL_AREAS),
    *(
        row
        for column, codes in COMORBIDITY_LISTS.items()
        for row in (
            (ANY_OF_LIST[column], "", BINARY),
            *((list_item_endpoint(column, code), "", BINARY) for code in codes),
        )
    ),
    ("prior_advanced", "", BINARY),
    ("prior_advanced_count", "", CONTINUOUS),
    *((f"prior_{drug}", "", BINARY) for drug in DRUGS),
])

EVERY_ROW = SPEC.every_binary
_SEX_BIT = {sex: SPEC.bit(f"sex_{sex}") for sex in SEXES}
_SUBTYPE_BIT = {subtype: SPEC.bit(f"subtype_{subtype}") for subtype in AD_SUBTYPES}
_AREA_BIT = {area: SPEC.bit(area) for area in SPECIAL_AREAS}
_ANY_AREA_BIT = SPEC.bit("any_special_area")
_LIST_BITS = {
    column: (
        SPEC.bit(ANY_OF_LIST[column]),
        {code: SPEC.bit(list_item_endpoint(column, code)) for code in codes},
    )
    for column, codes in COMORBIDITY_LISTS.items()
}
_PRIOR_BIT = {drug: SPEC.bit(f"prior_{drug}") for drug in DRUGS}
_PRIOR_ADVANCED_BIT = SPEC.bit("prior_advanced")
_ADVANCED = frozenset(ADVANCED_DRUGS)


def age_at_enrolment(patient: Patient) -> int | None:
    if patient.enrolled_on is None or patient.birth_year is None:
        return None
    return patient.enrolled_on.year - patient.birth_year


def body_mass_index(patient: Patient) -> float | None:
    if not patient.height_cm or patient.weight_kg is None:
        return None
    metres = patient.height_cm / 100
    return patient.weight_kg / (metres * metres)


def prior_advanced_count(patient: Patient) -> int:
    """Distinct prior biologics and JAK inhibitors (zero included)."""
    return len(patient.prior_drugs & _ADVANCED)


def _list_bits(any_bit: int, item_bits: dict, codes) -> int:
    """The bits of a list column's codes, and its "any" bit when the list is not empty."""
    if not codes:
        return 0
    present = any_bit
    for code in codes:
        present |= item_bits.get(code, 0)
    return present


def _prior_bits(drugs) -> tuple[int, int]:
    """(bits, prior advanced count) of the prior drugs."""
    present = 0
    for drug in drugs:
        present |= _PRIOR_BIT.get(drug, 0)
    advanced = len(_ADVANCED.intersection(drugs))
    if advanced:
        present |= _PRIOR_ADVANCED_BIT
    return present, advanced


class _ByCodes(dict):
    """A function of a set of codes, cached by the set: patients share few distinct sets of
    special areas, comorbidities or prior drugs, so each set is read once, not once a patient."""

    __slots__ = ("function",)

    def __init__(self, function):
        super().__init__()
        self.function = function

    def __missing__(self, codes):
        found = self.function(codes)
        if len(self) < 4096:
            self[codes] = found
        return found


_AREA_BITS = _ByCodes(partial(_list_bits, _ANY_AREA_BIT, _AREA_BIT))
_LIST_COLUMN_BITS = tuple(
    (attrgetter(column), _ByCodes(partial(_list_bits, any_bit, item_bits)))
    for column, (any_bit, item_bits) in _LIST_BITS.items()
)
_PRIOR_BITS = _ByCodes(_prior_bits)


def patient_baseline(patient: Patient) -> tuple[int, int, tuple]:
    """(evaluable bits, present bits, continuous values) of one patient, laid out as
    :data:`SPEC`. Every patient is evaluable for every categorical row."""
    present = _SEX_BIT.get(patient.sex, 0) | _SUBTYPE_BIT.get(patient.ad_subtype, 0)
    try:
        present |= _AREA_BITS[patient.special_areas]
        for codes_of, bits in _LIST_COLUMN_BITS:
            present |= bits[codes_of(patient)]
        prior, advanced = _PRIOR_BITS[patient.prior_drugs]
    except TypeError:  # codes in a list or set (not hashable) rather than a frozenset
        present |= _AREA_BITS.function(patient.special_areas)
        for codes_of, bits in _LIST_COLUMN_BITS:
            present |= bits.function(codes_of(patient))
        prior, advanced = _prior_bits(patient.prior_drugs)
    return EVERY_ROW, present | prior, (
        age_at_enrolment(patient), body_mass_index(patient), advanced
    )
