"""The files and columns of a dataset bundle (dataset-format.md), mapped onto the models.

One definition for the importer and, later, the exporter: a column names its CSV header, the
model field it fills and whether dataset-format.md marks it required (``*``). The type of a
cell (date, yes/no, ``;`` list, number, text) is the model field's, read by
``registry.datasets.bundle.parse_cell`` / ``format_cell``; a reference column (``center_code``,
``patient_code``, ``episode_code`` naming another record) says which file defines the code.

``FILES`` is in dependency order: a file only refers to files before it, which is also the
order in which the importer validates and writes them.
"""
from __future__ import annotations

from dataclasses import dataclass

from django.db import models

from endpoints.compute import vocabulary as v
from registry.centers.models import Center, LabRange
from registry.clinical.models import (
    AdverseEvent,
    DoseChange,
    Patient,
    PriorTreatment,
    TreatmentEpisode,
    Visit,
)


@dataclass(frozen=True)
class Column:
    """One CSV column: its header, the model field it fills, and whether it is required."""

    name: str
    field: str
    required: bool = False
    #: For a reference column, the file whose records the code names ("patients.csv").
    ref: str | None = None

    @property
    def is_reference(self):
        return self.ref is not None


@dataclass(frozen=True)
class FileSpec:
    """One CSV file of the bundle and the model its rows become."""

    name: str
    model: type[models.Model]
    columns: tuple[Column, ...]
    #: The columns that identify a record, in the bundle and in the registry.
    identity: tuple[str, ...]
    #: The code column other files refer to (centers, patients, episodes), if any.
    code_column: str | None = None

    @property
    def column_names(self):
        return tuple(column.name for column in self.columns)

    @property
    def required_columns(self):
        return tuple(column.name for column in self.columns if column.required)

    def column(self, name):
        return self._by_name[name]

    def model_field(self, column_name):
        return self.model._meta.get_field(self.column(column_name).field)

    def column_for_field(self, field_name):
        """The CSV column a model field is read from ("" when none, e.g. ``__all__``)."""
        return self._by_field.get(field_name, "")

    def __post_init__(self):
        object.__setattr__(self, "_by_name", {column.name: column for column in self.columns})
        object.__setattr__(self, "_by_field", {column.field: column.name for column in self.columns})


def _plain(*names):
    return tuple(Column(name, name) for name in names)


CENTERS = FileSpec(
    "centers.csv",
    Center,
    (
        Column("center_code", "code", required=True),
        Column("name", "name", required=True),
        Column("country", "country"),
    ),
    identity=("center_code",),
    code_column="center_code",
)

LAB_RANGES = FileSpec(
    "lab_ranges.csv",
    LabRange,
    (
        Column("center_code", "center", required=True, ref="centers.csv"),
        Column("analyte", "analyte", required=True),
        *_plain("lower", "upper"),
    ),
    identity=("center_code", "analyte"),
)

PATIENTS = FileSpec(
    "patients.csv",
    Patient,
    (
        Column("patient_code", "code", required=True),
        Column("center_code", "center", required=True, ref="centers.csv"),
        Column("sex", "sex", required=True),
        *_plain(
            "birth_year", "height_cm", "weight_kg", "ad_onset_age", "ad_subtype",
            "special_areas", *v.COMORBIDITY_LISTS, "enrolled_on",
        ),
    ),
    identity=("patient_code",),
    code_column="patient_code",
)

PRIOR_TREATMENTS = FileSpec(
    "prior_treatments.csv",
    PriorTreatment,
    (
        Column("patient_code", "patient", required=True, ref="patients.csv"),
        Column("drug", "drug", required=True),
        *_plain("start_date", "end_date", "stop_reason"),
    ),
    identity=("patient_code", "drug", "start_date"),
)

EPISODES = FileSpec(
    "episodes.csv",
    TreatmentEpisode,
    (
        Column("episode_code", "code", required=True),
        Column("patient_code", "patient", required=True, ref="patients.csv"),
        Column("drug", "drug", required=True),
        Column("start_date", "start_date", required=True),
        Column("start_dose_mg", "start_dose_mg", required=True),
        *_plain("end_date", "end_reason"),
    ),
    identity=("episode_code",),
    code_column="episode_code",
)

DOSE_CHANGES = FileSpec(
    "dose_changes.csv",
    DoseChange,
    (
        Column("episode_code", "episode", required=True, ref="episodes.csv"),
        Column("date", "date", required=True),
        Column("dose_mg", "dose_mg", required=True),
        Column("reason", "reason"),
    ),
    identity=("episode_code", "date"),
)

VISITS = FileSpec(
    "visits.csv",
    Visit,
    (
        Column("patient_code", "patient", required=True, ref="patients.csv"),
        Column("date", "date", required=True),
        *_plain(*v.SCORE_CODES, *v.ANALYTES, *(f"aesi_{term}" for term in v.CLINICAL_TERMS)),
    ),
    identity=("patient_code", "date"),
)

ADVERSE_EVENTS = FileSpec(
    "adverse_events.csv",
    AdverseEvent,
    (
        Column("patient_code", "patient", required=True, ref="patients.csv"),
        Column("episode_code", "episode", ref="episodes.csv"),
        Column("term", "term", required=True),
        Column("onset_date", "onset_date", required=True),
        *_plain("end_date", "severity", "serious", "action", "outcome", "description"),
    ),
    identity=("patient_code", "term", "onset_date"),
)

#: Every file of a bundle, parents before children.
FILES = (
    CENTERS, LAB_RANGES, PATIENTS, PRIOR_TREATMENTS, EPISODES, DOSE_CHANGES, VISITS,
    ADVERSE_EVENTS,
)
FILE_BY_NAME = {spec.name: spec for spec in FILES}
FILE_NAMES = tuple(FILE_BY_NAME)
