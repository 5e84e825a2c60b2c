"""What each exported column is: label, type, unit, allowed values or range.

Read from the models (verbose names, choices, validators, decimal places) through the column
definitions of ``columns.FILES``, so the data dictionary, ``datapackage.json``, the Excel
workbook and the Parquet schema cannot drift from what the importer accepts. Labels are
translated into the language active when the export runs.
"""
from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from decimal import Decimal

from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.template.loader import render_to_string
from django.utils import timezone
from django.utils.text import capfirst
from django.utils.translation import gettext as _

from endpoints.compute import vocabulary as v
from registry.clinical.models.visits import ScoreRange
from registry.core.choices import label as code_label
from registry.core.fields import CodeListField

from .columns import FILES, Column, FileSpec

# Kinds of cell, each with its Table Schema type (datapackage.json).
STRING, CODE, DATE, BOOLEAN, INTEGER, DECIMAL, FLOAT, LIST = (
    "string", "code", "date", "boolean", "integer", "decimal", "float", "list",
)
TABLE_SCHEMA_TYPES = {
    STRING: "string", CODE: "string", DATE: "date", BOOLEAN: "boolean", INTEGER: "integer",
    DECIMAL: "number", FLOAT: "number", LIST: "string",
}
YES, NO = "yes", "no"


def _units():
    units = {
        ("patients.csv", "height_cm"): "cm",
        ("patients.csv", "weight_kg"): "kg",
        ("patients.csv", "ad_onset_age"): _("years"),
        ("patients.csv", "birth_year"): _("calendar year"),
        ("episodes.csv", "start_dose_mg"): _("mg/day"),
        ("dose_changes.csv", "dose_mg"): _("mg/day"),
        ("visits.csv", "bsa"): "%",
        ("lab_ranges.csv", "lower"): _("the analyte's unit (see visits.csv)"),
        ("lab_ranges.csv", "upper"): _("the analyte's unit (see visits.csv)"),
    }
    for analyte, unit in v.LAB_UNITS.items():
        units[("visits.csv", analyte)] = unit
    return units


def _notes():
    """What a column means beyond its label, where the label is not enough."""
    notes = {
        ("centers.csv", "center_code"): _("Short unique code of the center."),
        ("centers.csv", "country"): _("ISO 3166-1 alpha-2 country code."),
        ("lab_ranges.csv", "lower"): _("Lower limit of normal; empty = none."),
        ("lab_ranges.csv", "upper"): _("Upper limit of normal; empty = none."),
        ("patients.csv", "patient_code"): _("Pseudonymous code, unique in the registry."),
        ("patients.csv", "birth_year"): _("Year only, never a full birth date."),
        ("patients.csv", "height_cm"): _("At enrolment."),
        ("patients.csv", "weight_kg"): _("At enrolment."),
        ("prior_treatments.csv", "drug"): _("A systemic treatment before the registry episodes."),
        ("episodes.csv", "episode_code"): _("One continuous course of one drug, unique in the registry."),
        ("episodes.csv", "start_date"): _("Day 0 of the episode."),
        ("episodes.csv", "end_date"): _("Empty while the treatment is ongoing."),
        ("episodes.csv", "end_reason"): _("Given exactly when the end date is."),
        ("dose_changes.csv", "date"): _("First day at the new dose."),
        ("dose_changes.csv", "dose_mg"): _("New daily dose; escalation or de-escalation follows from the dose before."),
        ("visits.csv", "date"): _("One visit per patient per date."),
        ("adverse_events.csv", "episode_code"): _("The treatment the event occurred on; empty = derived from the onset date (or outside every episode)."),
        ("adverse_events.csv", "serious"): _("ICH E2A seriousness."),
        ("adverse_events.csv", "description"): _("Free text; exported only when asked for."),
    }
    for term in v.CLINICAL_TERMS:
        notes[("visits.csv", f"aesi_{term}")] = _(
            "Solicited adverse-event checklist: yes / no; empty = not assessed at this visit."
        )
    return notes


@dataclass
class ColumnInfo:
    """One exported column, described."""

    file: str
    name: str
    kind: str
    label: str
    required: bool = False
    unit: str = ""
    #: Allowed codes (choices, list items) with their labels, in vocabulary order.
    codes: list[tuple[str, str]] = field(default_factory=list)
    minimum: float | int | Decimal | None = None
    maximum: float | int | Decimal | None = None
    #: Decimal fields: digits after the point (EASI: 1).
    decimal_places: int | None = None
    max_digits: int | None = None
    max_length: int | None = None
    pattern: str = ""
    #: The file and column a reference column names ("patients.csv", "patient_code").
    reference: tuple[str, str] | None = None
    note: str = ""

    @property
    def table_schema_type(self):
        return TABLE_SCHEMA_TYPES[self.kind]

    @property
    def allowed(self):
        """Allowed values or range, as a reader wants them."""
        if self.kind == BOOLEAN:
            return f"{YES} / {NO}"
        if self.codes:
            text = "; ".join(f"{code} ({name})" for code, name in self.codes)
            if self.kind == LIST:
                return _("zero or more of, separated by “;”: %(codes)s") % {"codes": text}
            return text
        if self.minimum is not None or self.maximum is not None:
            low = "" if self.minimum is None else _number(self.minimum)
            high = "" if self.maximum is None else _number(self.maximum)
            if low and high:
                text = f"{low} – {high}"
            elif low:
                text = _("≥ %(low)s") % {"low": low}
            else:
                text = _("≤ %(high)s") % {"high": high}
            if self.decimal_places:
                text += " " + (_("(one decimal)") if self.decimal_places == 1 else
                               _("(%(places)s decimals)") % {"places": self.decimal_places})
            return text
        if self.kind == DATE:
            return _("ISO 8601 date (YYYY-MM-DD)")
        if self.reference:
            return _("a %(column)s of %(file)s") % {"column": self.reference[1], "file": self.reference[0]}
        if self.pattern:
            return _("matches %(pattern)s") % {"pattern": self.pattern}
        return ""

    @property
    def type_label(self):
        return {
            STRING: _("text"), CODE: _("code"), DATE: _("date"), BOOLEAN: _("yes/no"),
            INTEGER: _("integer"), DECIMAL: _("number"), FLOAT: _("number"),
            LIST: _("list of codes"),
        }[self.kind]


def _number(value):
    if isinstance(value, Decimal):
        return f"{value.normalize():f}"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _limits(model_field):
    """(minimum, maximum) from the validators declared on the field."""
    low = high = None
    if isinstance(model_field, (models.PositiveSmallIntegerField, models.PositiveIntegerField)):
        low = 0
    for validator in getattr(model_field, "_validators", ()):
        if isinstance(validator, ScoreRange):
            low, high = validator.low, validator.high
        elif isinstance(validator, MinValueValidator):
            limit = validator.limit_value
            low = limit if low is None else max(low, limit)
        elif isinstance(validator, MaxValueValidator):
            limit = validator.limit_value
            high = limit if high is None else min(high, limit)
    if model_field.name == "birth_year":
        high = timezone.localdate().year
    return low, high


def _pattern(model_field):
    for validator in getattr(model_field, "_validators", ()):
        regex = getattr(validator, "regex", None)
        if regex is not None:
            return regex.pattern
    return ""


def column_info(spec: FileSpec, column: Column, *, units=None, notes=None) -> ColumnInfo:
    units = _units() if units is None else units
    notes = _notes() if notes is None else notes
    model_field = spec.model_field(column.name)
    key = (spec.name, column.name)
    info = ColumnInfo(
        file=spec.name, name=column.name, kind=STRING, label="", required=column.required,
        unit=str(units.get(key, "")), note=str(notes.get(key, "")),
    )
    if column.is_reference:
        target = next(s for s in FILES if s.name == column.ref)
        target_field = target.model_field(target.code_column)
        info.kind = CODE
        info.reference = (column.ref, target.code_column)
        info.label = capfirst(str(target_field.verbose_name))
        info.max_length = target_field.max_length
        info.pattern = _pattern(target_field)
        return info
    info.label = capfirst(str(model_field.verbose_name))
    if column.name.startswith("aesi_"):
        info.label = _("Checklist: %(term)s") % {"term": code_label(column.name[len("aesi_"):])}
    elif column.name in v.LAB_UNITS:
        info.label = str(code_label(column.name))
    if isinstance(model_field, CodeListField):
        info.kind = LIST
        info.codes = [(code, str(code_label(code))) for code in model_field.codes]
        return info
    if isinstance(model_field, models.BooleanField):
        info.kind = BOOLEAN
        return info
    if isinstance(model_field, models.DateField):
        info.kind = DATE
        return info
    if isinstance(model_field, models.DecimalField):
        info.kind = DECIMAL
        info.decimal_places = model_field.decimal_places
        info.max_digits = model_field.max_digits
    elif isinstance(model_field, models.FloatField):
        info.kind = FLOAT
    elif isinstance(model_field, models.IntegerField):
        info.kind = INTEGER
    if info.kind in (DECIMAL, FLOAT, INTEGER):
        info.minimum, info.maximum = _limits(model_field)
        return info
    if model_field.choices:
        info.kind = CODE
        info.codes = [(code, str(name)) for code, name in model_field.flatchoices]
    elif spec.code_column == column.name:
        info.kind = CODE
    info.max_length = model_field.max_length
    info.pattern = _pattern(model_field)
    return info


def exported_columns(spec: FileSpec, *, free_text: bool) -> tuple[Column, ...]:
    """The columns of ``spec`` an export writes: all of dataset-format.md's, except free text
    (the adverse-event description) unless asked for."""
    return tuple(
        column for column in spec.columns
        if free_text or not isinstance(spec.model_field(column.name), models.TextField)
    )


def free_text_columns():
    return [
        (spec.name, column.name) for spec in FILES for column in spec.columns
        if isinstance(spec.model_field(column.name), models.TextField)
    ]


def describe(*, free_text: bool) -> dict[str, list[ColumnInfo]]:
    """file name -> its exported columns, described (in the active language)."""
    units, notes = _units(), _notes()
    return {
        spec.name: [
            column_info(spec, column, units=units, notes=notes)
            for column in exported_columns(spec, free_text=free_text)
        ]
        for spec in FILES
    }


DICTIONARY_COLUMNS = (
    "file", "column", "label", "type", "unit", "required", "allowed_values", "minimum",
    "maximum", "description",
)


def dictionary_rows(described):
    for infos in described.values():
        for info in infos:
            yield {
                "file": info.file,
                "column": info.name,
                "label": info.label,
                "type": info.type_label,
                "unit": info.unit,
                "required": YES if info.required else NO,
                "allowed_values": info.allowed,
                "minimum": "" if info.minimum is None else _number(info.minimum),
                "maximum": "" if info.maximum is None else _number(info.maximum),
                "description": info.note,
            }


def dictionary_csv(described) -> str:
    out = io.StringIO(newline="")
    writer = csv.DictWriter(out, DICTIONARY_COLUMNS)
    writer.writeheader()
    writer.writerows(dictionary_rows(described))
    return out.getvalue()


def dictionary_html(described, *, about) -> str:
    """A standalone page (the zip's ``data_dictionary.html``): ``about`` describes the export
    (scope, filters, options, rows); it holds no user."""
    return render_to_string("datasets/export_dictionary.html", {
        "files": [(name, infos) for name, infos in described.items()],
        "about": about,
    })
