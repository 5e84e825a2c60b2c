"""import(export(db)) into an empty registry gives back every record, field by field, and the
same endpoint report, on both fixture cohorts."""
import io

import pytest
from django.core.management import call_command

from endpoints.compute.report import compute_report, write_results_csv
from endpoints.selectors import load_cohort
from registry.datasets.columns import FILES
from registry.datasets.exporter import ExportOptions, export_bundle
from registry.datasets.importer import import_bundle
from tests.exports.conftest import BUNDLES

#: Transactional: ``flush`` empties the tables (PostgreSQL refuses TRUNCATE inside the
#: transaction of a plain test, whose inserts left pending foreign-key checks).
pytestmark = pytest.mark.django_db(transaction=True)

BOOKKEEPING = {"created_at", "updated_at", "version"}


def registry_records():
    """Every record of the bundle's models, keyed by its identity, as its field values (a
    reference as the code of the record it names)."""
    snapshot = {}
    for spec in FILES:
        model = spec.model
        related = [f.name for f in model._meta.concrete_fields if f.is_relation]
        records = {}
        for obj in model._default_manager.select_related(*related):
            values = {}
            for f in model._meta.concrete_fields:
                if f.primary_key or f.name in BOOKKEEPING:
                    continue
                if f.is_relation:
                    target = getattr(obj, f.name)
                    values[f.name] = None if target is None else target.code
                else:
                    values[f.name] = getattr(obj, f.attname)
            key = tuple(values[spec.column(name).field] for name in spec.identity)
            assert key not in records, f"{spec.name}: {key} twice"
            records[key] = values
        snapshot[spec.name] = records
    return snapshot


def report_text():
    out = io.StringIO()
    write_results_csv(compute_report(load_cohort()), out)
    return out.getvalue()


def empty_the_registry():
    call_command("flush", interactive=False, verbosity=0)
    assert all(not records for records in registry_records().values())


def round_trip(tmp_path, options):
    before, report_before = registry_records(), report_text()
    result = export_bundle(tmp_path / "export.zip", options)
    empty_the_registry()
    imported = import_bundle(result.path)
    assert imported.error_lines() == []
    assert imported.written
    assert {name: summary.created for name, summary in imported.summary.items()} == result.row_counts
    assert {name.split("/", 1)[1] for name in imported.ignored_files} >= {"data_dictionary.csv", "datapackage.json"}
    return before, report_before, registry_records(), report_text(), result


@pytest.mark.parametrize("bundles", [("french",), ("spanish",), ("french", "spanish")])
def test_import_of_the_export_gives_back_every_record_and_the_same_report(db, tmp_path, bundles):
    for name in bundles:
        assert import_bundle(BUNDLES / name).error_lines() == []
    before, report_before, after, report_after, result = round_trip(
        tmp_path, ExportOptions(free_text=True, excel=True, parquet=True)
    )
    assert sum(result.row_counts.values()) > 500
    for spec in FILES:
        assert after[spec.name] == before[spec.name], spec.name
    assert report_after == report_before
    assert report_before.count("\n") > 100


def test_the_round_trip_holds_for_awkward_values(cohort, tmp_path):
    """Free text with quotes, commas, line breaks and a leading "=", floats like 1.0, lists,
    empty codes, an event whose episode was derived."""
    before, report_before, after, report_after, _result = round_trip(tmp_path, ExportOptions(free_text=True))
    assert after == before
    assert report_after == report_before


def test_without_free_text_only_the_descriptions_are_missing(cohort, tmp_path):
    before, report_before, after, report_after, _result = round_trip(tmp_path, ExportOptions())
    events_before = before.pop("adverse_events.csv")
    events_after = after.pop("adverse_events.csv")
    assert after == before
    assert {key: {**values, "description": ""} for key, values in events_before.items()} == events_after
    assert any(values["description"] for values in events_before.values())
    assert report_after == report_before


def test_the_commands_round_trip(french, tmp_path):
    """``import_dataset`` of the file ``export_dataset`` wrote."""
    before = registry_records()
    output = tmp_path / "cli.zip"
    call_command("export_dataset", "--output", str(output), "--free-text", stdout=io.StringIO())
    empty_the_registry()
    call_command("import_dataset", str(output), stdout=io.StringIO(), stderr=io.StringIO())
    assert registry_records() == before
