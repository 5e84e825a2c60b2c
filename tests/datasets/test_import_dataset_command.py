"""``manage.py import_dataset``: errors on stdout and a non-zero exit, or the summary."""
import subprocess
import sys
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from registry.clinical.models import Patient, Visit

pytestmark = pytest.mark.django_db

ROOT = Path(__file__).resolve().parents[2]


def run(*args):
    out, err = StringIO(), StringIO()
    call_command("import_dataset", *map(str, args), stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def test_it_imports_and_prints_the_summary(bundle_files, write_bundle, counts, valid_counts):
    out, err = run(write_bundle(bundle_files))
    assert counts() == valid_counts
    assert "visits.csv" in out and "created      3" in out
    assert "Imported: 18 created, 0 updated, 0 unchanged" in out
    # Progress goes to stderr, per file.
    assert "patients.csv: 3 rows" in err
    assert "visits.csv: creating 3 records" in err


def test_a_second_run_reports_everything_unchanged(bundle_files, write_bundle):
    folder = write_bundle(bundle_files)
    run(folder)
    out, _err = run(folder)
    assert "Imported: 0 created, 0 updated, 18 unchanged" in out


def test_it_prints_every_error_and_fails(bundle_files, write_bundle, counts):
    bundle_files["visits.csv"][1]["easi"] = "80"
    bundle_files["patients.csv"][2]["sex"] = "x"
    before = counts()
    out = StringIO()
    with pytest.raises(CommandError, match=r"2 error\(s\) in .*nothing was written"):
        call_command("import_dataset", str(write_bundle(bundle_files)), stdout=out, stderr=StringIO())
    assert out.getvalue().splitlines() == [
        "patients.csv:4:sex: Value 'x' is not a valid choice.",
        "visits.csv:3:easi: EASI must be between 0 and 72.",
    ]
    assert counts() == before


def test_unknown_columns_fail_unless_ignored(bundle_files, write_bundle):
    bundle_files["patients.csv"][0]["hospital_number"] = "123456"
    folder = write_bundle(bundle_files)
    out = StringIO()
    with pytest.raises(CommandError):
        call_command("import_dataset", str(folder), stdout=out, stderr=StringIO())
    assert out.getvalue().splitlines() == ["patients.csv:1:hospital_number: Unknown column."]
    run(folder, "--ignore-unknown-columns")
    assert Patient.objects.count() == 3


def test_a_dry_run_writes_nothing(bundle_files, write_bundle):
    out, _err = run(write_bundle(bundle_files), "--dry-run")
    assert "Dry run, nothing written: 18 created" in out
    assert Visit.objects.count() == 0


def test_verbosity_zero_prints_no_progress(bundle_files, write_bundle):
    _out, err = run(write_bundle(bundle_files), "--verbosity", "0")
    assert err == ""


@pytest.mark.django_db(transaction=True)
def test_the_exit_status_is_non_zero_on_errors(bundle_files, write_bundle, tmp_path):
    bundle_files["visits.csv"][1]["easi"] = "80"
    folder = write_bundle(bundle_files)
    from django.db import connection

    env = {"PATH": "/usr/bin:/bin", "DJANGO_SETTINGS_MODULE": "registry.settings"}
    if connection.vendor == "sqlite":
        env["DATABASE_URL"] = f"sqlite:///{connection.settings_dict['NAME']}"
    else:
        settings = connection.settings_dict
        env["DATABASE_URL"] = (
            f"postgres://{settings['USER']}@{settings['HOST'] or '127.0.0.1'}:{settings['PORT'] or 5432}/{settings['NAME']}"
        )
    completed = subprocess.run(
        [sys.executable, "manage.py", "import_dataset", str(folder)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )
    assert completed.returncode == 1
    assert completed.stdout.splitlines() == ["visits.csv:3:easi: EASI must be between 0 and 72."]
    assert "nothing was written" in completed.stderr
