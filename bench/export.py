"""Scale benchmark of the pooled dataset export, against PostgreSQL.

    .venv/bin/python bench/export.py --patients 100000 [--centers 100] \
        [--database-url postgres://postgres@127.0.0.1:5432/registry_bench_export] [--reuse] \
        [--runs 3] [--only csv,python,shift,scale,typed]

1. The cohort comes from bench/endpoints.py's generator (registry/clinical/synthetic.py,
   COPY into PostgreSQL, the centers split between processes), into a database of its own
   (``registry_bench_export``: bench/endpoints.py drops and remakes ``registry_bench`` when
   its cohort changes), kept with ``--reuse`` when it already holds the requested cohort.
2. Each measurement runs in a fresh subprocess, so its peak memory (``ru_maxrss``) is its own,
   ``--runs`` times; the best and the median are printed:

   - ``floor``: ``COPY (SELECT * FROM <table>) TO STDOUT`` of the eight tables through a bare
     psycopg connection, bytes dropped: what PostgreSQL and the driver alone take;
   - ``csv``: the export as the web task and ``manage.py export_dataset`` run it (every
     center, bundle CSVs by PostgreSQL COPY streamed into the zip, dictionary,
     datapackage.json): seconds, rows per second over the whole export, visit rows per
     second (over the whole export, and over the writing of visits.csv alone), zip size,
     peak memory;
   - ``python``: the same through the generic path (``values_list().iterator()`` and
     ``format_cell`` on every cell; what SQLite uses);
   - ``shift``: ``csv`` with the per-patient date shift (computed in SQL);
   - ``scale``: ``csv`` on a tenth of the centers, to show that peak memory does not grow
     with the size of the export;
   - ``typed``: Excel workbook and Parquet files as well (``--typed-centers`` centers, since
     openpyxl writes a few tens of thousands of cells a second).
"""
import argparse
import importlib.util
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_URL = "postgres://postgres@127.0.0.1:5432/registry_bench_export"
TARGET_VISITS_PER_S = 100_000
TARGET_PEAK_MB = 300


def generator():
    """bench/endpoints.py as a module (its name clashes with the ``endpoints`` app); it is
    registered under its own name so that its worker processes can unpickle its functions."""
    name = "bench_endpoints"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, ROOT / "bench" / "endpoints.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def peak_rss_mb():
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)


def current_rss_mb():
    with open("/proc/self/statm") as handle:
        return round(int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20)


# Measurements (each in its own subprocess) ---------------------------------------------------


def run_export(args, **overrides):
    from registry.centers.models import Center
    from registry.datasets.exporter import ExportOptions, export_bundle

    centers = None
    if overrides.pop("tenth", False) or overrides.get("typed"):
        count = args.typed_centers if overrides.get("typed") else max(1, args.centers // 10)
        centers = tuple(Center.objects.order_by("code").values_list("code", flat=True)[:count])
    typed = overrides.pop("typed", False)
    options = ExportOptions(
        centers=centers, shift_dates=overrides.pop("shift", False), excel=typed, parquet=typed,
    )
    stages = {}

    def progress(done, total, stage):
        now = time.perf_counter()
        entry = stages.setdefault(stage, [now, now])
        entry[1] = now

    rss_before = current_rss_mb()
    with tempfile.TemporaryDirectory(dir=args.scratch) as folder:
        started = time.perf_counter()
        result = export_bundle(Path(folder) / "export.zip", options, progress=progress, **overrides)
        seconds = time.perf_counter() - started
    visits = result.row_counts["visits.csv"]
    visit_stage = stages.get("visits.csv")
    visit_seconds = (visit_stage[1] - visit_stage[0]) if visit_stage else None
    rows = sum(result.row_counts.values())
    return {
        "seconds": seconds,
        "rows": rows,
        "visits": visits,
        "patients": result.row_counts["patients.csv"],
        "centers": len(result.center_codes),
        "rows_per_s": rows / seconds,
        "visits_per_s": visits / seconds,
        "visits_csv_per_s": visits / visit_seconds if visit_seconds else None,
        "zip_mb": result.size / 2**20,
        "rss_before_mb": rss_before,
        "peak_rss_mb": peak_rss_mb(),
    }


def measure_floor(args):
    """What PostgreSQL and the driver alone take to hand over every row of the exported tables
    as CSV (``COPY (SELECT * ...) TO STDOUT``, bytes dropped): no formatting, no zip."""
    import psycopg

    tables = ("centers_center", "centers_labrange", "clinical_patient", "clinical_priortreatment",
              "clinical_treatmentepisode", "clinical_dosechange", "clinical_visit",
              "clinical_adverseevent")
    result = {"visits_floor_s": 0.0, "all_floor_s": 0.0}
    with psycopg.connect(generator().conninfo(args.database_url)) as connection:
        for table in tables:
            order = " ORDER BY patient_id, date, id" if table == "clinical_visit" else ""
            started = time.perf_counter()
            with connection.cursor().copy(f"COPY (SELECT * FROM {table}{order}) TO STDOUT WITH (FORMAT csv)") as copy:
                for _data in copy:
                    pass
            seconds = time.perf_counter() - started
            result["all_floor_s"] += seconds
            if table == "clinical_visit":
                result["visits_floor_s"] = seconds
    return result


MEASURES = {
    "floor": measure_floor,
    "csv": lambda args: run_export(args),
    "python": lambda args: run_export(args, use_copy=False),
    "shift": lambda args: run_export(args, shift=True),
    "scale": lambda args: run_export(args, tenth=True),
    "typed": lambda args: run_export(args, typed=True),
}


def measure_in_subprocess(args, kind):
    command = [
        sys.executable, __file__, "--measure", kind, "--database-url", args.database_url,
        "--centers", str(args.centers), "--typed-centers", str(args.typed_centers),
        "--scratch", args.scratch,
    ]
    output = subprocess.run(command, check=True, capture_output=True, text=True, cwd=ROOT)
    return json.loads(output.stdout.strip().splitlines()[-1])


# Report ------------------------------------------------------------------------------------


def summary(values):
    values = [value for value in values if value is not None]
    if not values:
        return None, None
    return values, statistics.median(values)


def print_figures(title, results):
    first = results[0]
    print(f"\n{title}: {first['centers']} centers, {first['patients']:,} patients, "
          f"{first['visits']:,} visits, {first['rows']:,} rows in all")
    rows = (
        ("seconds", "export, total", "s", min),
        ("rows_per_s", "rows per second (all files, whole export)", "rows/s", max),
        ("visits_per_s", "visit rows per second (whole export)", "rows/s", max),
        ("visits_csv_per_s", "visit rows per second (visits.csv alone)", "rows/s", max),
        ("zip_mb", "zip size", "MB", min),
        ("peak_rss_mb", "peak memory (ru_maxrss of the process)", "MB", min),
        ("rss_before_mb", "memory before the export (Django loaded)", "MB", min),
    )
    for key, label, unit, best_of in rows:
        values, median = summary([result.get(key) for result in results])
        if values is None:
            continue
        best = best_of(values)
        runs = ", ".join(f"{value:,.1f}" if unit in ("s", "MB") else f"{value:,.0f}" for value in values)
        if unit in ("s", "MB"):
            print(f"  {label:<48} best {best:10,.1f} {unit:<6} median {median:10,.1f}   runs {runs}")
        else:
            print(f"  {label:<48} best {best:10,.0f} {unit:<6} median {median:10,.0f}   runs {runs}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--patients", type=int, default=100_000)
    parser.add_argument("--centers", type=int, default=100)
    parser.add_argument("--database-url", default=os.environ.get("BENCH_EXPORT_DATABASE_URL", DEFAULT_URL))
    parser.add_argument("--reuse", action="store_true",
                        help="keep the database when it already holds the requested cohort")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1),
                        help="processes generating the cohort")
    parser.add_argument("--only", help="comma-separated measurements (floor,csv,python,shift,scale,typed)")
    parser.add_argument("--typed-centers", type=int, default=10,
                        help="centers in the Excel/Parquet measurement")
    parser.add_argument("--scratch", default=tempfile.gettempdir(), help="folder for the zips")
    parser.add_argument("--measure", choices=tuple(MEASURES), help=argparse.SUPPRESS)
    args = parser.parse_args()
    bench = generator()

    if args.measure:
        bench.configure(args.database_url)
        print(json.dumps(MEASURES[args.measure](args)))
        return

    bench.recreate_database(args.database_url, drop=False)
    bench.configure(args.database_url)
    from django.core.management import call_command
    from django.db import connections

    if not (args.reuse and bench.cohort_present(args.patients, args.centers)):
        connections.close_all()
        bench.recreate_database(args.database_url, drop=True)
        call_command("migrate", verbosity=0)
        counts, loaded, total = bench.generate(args.database_url, args.patients, args.centers, args.workers)
        print(f"Generated {counts['patients']:,} patients in {args.centers} centers: "
              f"{counts['visits']:,} visits, {counts['episodes']:,} episodes, "
              f"{counts['dose_changes']:,} dose changes, {counts['prior_treatments']:,} prior "
              f"treatments, {counts['adverse_events']:,} adverse events ({total:.0f} s)", flush=True)
    else:
        call_command("migrate", verbosity=0)
        print(f"Reusing {bench.database_name(args.database_url)} ({args.patients:,} patients)", flush=True)
    connections.close_all()

    wanted = args.only.split(",") if args.only else ["floor", "csv", "python", "shift", "scale", "typed"]
    results = {kind: [] for kind in wanted}
    for run in range(args.runs):
        for kind in wanted:
            results[kind].append(measure_in_subprocess(args, kind))
        print(f"run {run + 1}/{args.runs} done", flush=True)

    if results.get("floor"):
        print("\nFloor: COPY (SELECT * FROM <table>) TO STDOUT through psycopg, bytes dropped")
        for key, label in (("visits_floor_s", "visits table"), ("all_floor_s", "the eight tables")):
            values = [result[key] for result in results["floor"]]
            print(f"  {label:<48} best {min(values):10,.1f} s      median {statistics.median(values):10,.1f}")
        if results.get("csv"):
            floor = min(result["all_floor_s"] for result in results["floor"])
            best = min(result["seconds"] for result in results["csv"])
            print(f"  whole export / floor (best / best): {best / floor:.2f}x")
    wanted = [kind for kind in wanted if kind != "floor"]
    titles = {
        "csv": "Export (PostgreSQL COPY path, as the task and the command run it)",
        "python": "Export, generic path (values_list iterator + format_cell, SQLite's path)",
        "shift": "Export with per-patient date shift (COPY path)",
        "scale": "Export of a tenth of the centers (memory does not grow with size)",
        "typed": "Export with Excel workbook and Parquet files",
    }
    for kind in wanted:
        print_figures(titles[kind], results[kind])
    if results.get("csv"):
        best_rate = max(result["visits_per_s"] for result in results["csv"])
        worst_peak = max(result["peak_rss_mb"] for result in results["csv"])
        verdict = "met" if best_rate >= TARGET_VISITS_PER_S and worst_peak < TARGET_PEAK_MB else "NOT met"
        print(f"\nTarget ({TARGET_VISITS_PER_S:,} visit rows/s, peak < {TARGET_PEAK_MB} MB): {verdict} "
              f"(best {best_rate:,.0f} visit rows/s over the whole export, worst peak {worst_peak} MB)")
    print("\nRaw results:", json.dumps(results))


if __name__ == "__main__":
    main()
