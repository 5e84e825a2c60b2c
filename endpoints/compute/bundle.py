"""Read a dataset bundle (dataset-format.md) into the plain records.

A light reader for tests, fixtures and the command line: it parses types faithfully and refuses
what it cannot parse, naming file, row and column, but it does not apply the registry's
validation rules (ranges, references, duplicates). The validating importer on the Django side
does that. Unknown columns are ignored by default because a registry export may carry more
columns than the format requires (one-hot columns, a data dictionary); pass ``strict=True`` to
have a typo in a hand-written fixture fail loudly instead.
"""
from __future__ import annotations

import csv
import io
import zipfile
from collections import defaultdict
from datetime import date
from pathlib import Path

from .records import AdverseEvent, Center, Cohort, DoseChange, Episode, Patient, Visit
from .vocabulary import ANALYTES, CLINICAL_TERMS, COMORBIDITY_LISTS

INTEGER_SCORES = ("iga", "pruritus_nrs", "sleep_nrs", "dlqi", "poem")
DECIMAL_SCORES = ("easi", "scorad", "bsa")
CHECKLIST_PREFIX = "aesi_"

_COLUMNS = {
    "centers.csv": {"center_code", "name", "country"},
    "lab_ranges.csv": {"center_code", "analyte", "lower", "upper"},
    "patients.csv": {
        "patient_code", "center_code", "sex", "birth_year", "height_cm", "weight_kg",
        "ad_onset_age", "ad_subtype", "special_areas", *COMORBIDITY_LISTS, "enrolled_on",
    },
    "prior_treatments.csv": {"patient_code", "drug", "start_date", "end_date", "stop_reason"},
    "episodes.csv": {
        "episode_code", "patient_code", "drug", "start_date", "start_dose_mg", "end_date",
        "end_reason",
    },
    "dose_changes.csv": {"episode_code", "date", "dose_mg", "reason"},
    "visits.csv": {
        "patient_code", "date", *INTEGER_SCORES, *DECIMAL_SCORES, *ANALYTES,
        *(CHECKLIST_PREFIX + term for term in CLINICAL_TERMS),
    },
    "adverse_events.csv": {
        "patient_code", "episode_code", "term", "onset_date", "end_date", "severity", "serious",
        "action", "outcome", "description",
    },
}
REQUIRED_FILES = ("centers.csv", "patients.csv", "episodes.csv")


class BundleError(ValueError):
    """A bundle that cannot be read; the message names file, row and column."""


class _Row:
    """One CSV row with typed accessors whose errors say where the bad cell is."""

    __slots__ = ("file", "line", "cells")

    def __init__(self, file: str, line: int, cells: dict[str, str]):
        self.file, self.line, self.cells = file, line, cells

    def fail(self, column: str, message: str):
        raise BundleError(f"{self.file}, row {self.line}, column {column!r}: {message}")

    def text(self, column: str) -> str | None:
        value = (self.cells.get(column) or "").strip()
        return value or None

    def required(self, column: str) -> str:
        value = self.text(column)
        if value is None:
            self.fail(column, "required value is empty")
        return value

    def number(self, column: str, *, required: bool = False) -> float | None:
        value = self.required(column) if required else self.text(column)
        if value is None:
            return None
        try:
            return float(value)
        except ValueError:
            self.fail(column, f"{value!r} is not a number")

    def integer(self, column: str) -> int | None:
        value = self.number(column)
        if value is None:
            return None
        if value != int(value):
            self.fail(column, f"{value!r} is not a whole number")
        return int(value)

    def day(self, column: str, *, required: bool = False) -> date | None:
        value = self.required(column) if required else self.text(column)
        if value is None:
            return None
        try:
            return date.fromisoformat(value)
        except ValueError:
            self.fail(column, f"{value!r} is not an ISO date (YYYY-MM-DD)")

    def yes_no(self, column: str) -> bool | None:
        value = self.text(column)
        if value is None:
            return None
        if value == "yes":
            return True
        if value == "no":
            return False
        self.fail(column, f"{value!r} is not yes or no")

    def codes(self, column: str) -> frozenset[str]:
        """A list cell: empty means none of the items, not missing."""
        value = self.text(column)
        if value is None:
            return frozenset()
        return frozenset(code.strip() for code in value.split(";") if code.strip())


class _Source:
    """The CSV files of a bundle, from a directory or a zip (files at its root or inside one
    folder)."""

    def __init__(self, path):
        self.path = Path(path)
        self._zip = None
        self._prefix = ""
        if self.path.is_dir():
            return
        if not zipfile.is_zipfile(self.path):
            raise BundleError(f"{self.path} is neither a directory nor a zip file")
        self._zip = zipfile.ZipFile(self.path)
        anchors = [
            name for name in self._zip.namelist()
            if name.rsplit("/", 1)[-1] == "centers.csv" and "__MACOSX" not in name
        ]
        if not anchors:
            raise BundleError(f"{self.path}: no centers.csv in the zip")
        self._prefix = min(anchors, key=len)[: -len("centers.csv")]

    def close(self):
        if self._zip is not None:
            self._zip.close()

    def _open_text(self, name: str):
        if self._zip is None:
            file = self.path / name
            if not file.exists():
                return None
            return open(file, encoding="utf-8-sig", newline="")
        try:
            raw = self._zip.read(self._prefix + name)
        except KeyError:
            return None
        return io.StringIO(raw.decode("utf-8-sig"), newline="")

    def rows(self, name: str, *, strict: bool):
        handle = self._open_text(name)
        if handle is None:
            if name in REQUIRED_FILES:
                raise BundleError(f"{name}: required file is missing from the bundle")
            return
        with handle:
            reader = csv.DictReader(handle)
            header = [column.strip() for column in (reader.fieldnames or [])]
            reader.fieldnames = header
            if strict:
                unknown = sorted(set(header) - _COLUMNS[name])
                if unknown:
                    raise BundleError(f"{name}: unknown column(s) {', '.join(unknown)}")
            for line, cells in enumerate(reader, start=2):
                yield _Row(name, line, cells)


def read_bundle(path, *, strict: bool = False) -> Cohort:
    """The records of a bundle directory or ``.zip``.

    Dose changes are attached to their episode in date order and visits are sorted by date,
    whatever the row order of the files, because the computation relies on both orders.
    """
    source = _Source(path)
    try:
        return _read(source, strict=strict)
    finally:
        source.close()


def _read(source: _Source, *, strict: bool) -> Cohort:
    ranges: dict[str, dict[str, tuple[float | None, float | None]]] = defaultdict(dict)
    for row in source.rows("lab_ranges.csv", strict=strict):
        ranges[row.required("center_code")][row.required("analyte")] = (
            row.number("lower"), row.number("upper"),
        )
    centers = {}
    for row in source.rows("centers.csv", strict=strict):
        code = row.required("center_code")
        centers[code] = Center(code=code, lab_ranges=dict(ranges.get(code, {})))
    for code in ranges.keys() - centers.keys():
        # Ranges of a center that is registered but not in this bundle: keep them reachable.
        centers[code] = Center(code=code, lab_ranges=dict(ranges[code]))

    prior_drugs: dict[str, set[str]] = defaultdict(set)
    for row in source.rows("prior_treatments.csv", strict=strict):
        prior_drugs[row.required("patient_code")].add(row.required("drug"))

    patients = {}
    for row in source.rows("patients.csv", strict=strict):
        code = row.required("patient_code")
        patients[code] = Patient(
            code=code,
            center_code=row.required("center_code"),
            sex=row.required("sex"),
            birth_year=row.integer("birth_year"),
            height_cm=row.number("height_cm"),
            weight_kg=row.number("weight_kg"),
            ad_onset_age=row.number("ad_onset_age"),
            ad_subtype=row.text("ad_subtype"),
            special_areas=row.codes("special_areas"),
            atopic_comorbidities=row.codes("atopic_comorbidities"),
            autoimmune_comorbidities=row.codes("autoimmune_comorbidities"),
            cv_risk_factors=row.codes("cv_risk_factors"),
            neoplasia_last_5y=row.codes("neoplasia_last_5y"),
            enrolled_on=row.day("enrolled_on"),
            prior_drugs=frozenset(prior_drugs.get(code, ())),
        )

    changes: dict[str, list[DoseChange]] = defaultdict(list)
    for row in source.rows("dose_changes.csv", strict=strict):
        changes[row.required("episode_code")].append(DoseChange(
            date=row.day("date", required=True),
            dose_mg=row.number("dose_mg", required=True),
            reason=row.text("reason"),
        ))

    episodes = []
    for row in source.rows("episodes.csv", strict=strict):
        code = row.required("episode_code")
        episodes.append(Episode(
            code=code,
            patient_code=row.required("patient_code"),
            drug=row.required("drug"),
            start_date=row.day("start_date", required=True),
            start_dose_mg=row.number("start_dose_mg", required=True),
            end_date=row.day("end_date"),
            end_reason=row.text("end_reason"),
            dose_changes=tuple(sorted(changes.get(code, ()), key=lambda change: change.date)),
        ))
    episodes.sort(key=lambda episode: (episode.patient_code, episode.start_date, episode.code))

    visits: dict[str, list[Visit]] = {code: [] for code in patients}
    for row in source.rows("visits.csv", strict=strict):
        patient_code = row.required("patient_code")
        visit_date = row.day("date", required=True)
        scores = {column: row.integer(column) for column in INTEGER_SCORES}
        scores.update({column: row.number(column) for column in DECIMAL_SCORES})
        labs = {}
        for analyte in ANALYTES:
            value = row.number(analyte)
            if value is not None:
                labs[analyte] = value
        checklist = {}
        for term in CLINICAL_TERMS:
            answer = row.yes_no(CHECKLIST_PREFIX + term)
            if answer is not None:
                checklist[term] = answer
        visits.setdefault(patient_code, []).append(Visit(
            patient_code=patient_code, date=visit_date, labs=labs, checklist=checklist,
            **scores,
        ))
    for patient_visits in visits.values():
        patient_visits.sort(key=lambda visit: visit.date)

    adverse_events: dict[str, list[AdverseEvent]] = {}
    for row in source.rows("adverse_events.csv", strict=strict):
        patient_code = row.required("patient_code")
        adverse_events.setdefault(patient_code, []).append(AdverseEvent(
            patient_code=patient_code,
            term=row.required("term"),
            onset_date=row.day("onset_date", required=True),
            episode_code=row.text("episode_code"),
            end_date=row.day("end_date"),
            severity=row.text("severity"),
            serious=row.yes_no("serious"),
        ))

    return Cohort(
        centers=centers,
        patients=patients,
        episodes=episodes,
        visits=visits,
        adverse_events=adverse_events,
    )
