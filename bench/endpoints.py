"""Scale benchmark of the cohort endpoints' recompute, against PostgreSQL.

    .venv/bin/python bench/endpoints.py --patients 100000 [--centers 100] \
        [--database-url postgres://postgres@127.0.0.1:5432/registry_bench] [--reuse] [--runs 3]

1. Generates a synthetic multicenter cohort (registry/clinical/synthetic.py's
   ``build_cohort``, one seed per center) into a dedicated database, created and migrated here
   (dropped and made anew unless ``--reuse`` finds it populated with the requested cohort).
   Rows go in with PostgreSQL COPY, the centers split between processes; ``build_cohort``
   runs on light stand-ins for the model classes (same defaults, same rows: checked against
   ``save_cohort``; ``--model-instances`` uses the real classes).
2. Measures, each in a fresh subprocess so that its peak memory is its own, ``--runs`` times:

   - ``all``: ``services.recompute_all_scopes()`` (every center in parts side by side, then
     the pooled scope), with the breakdown parts (each part's read with its fingerprints' summaries, facts,
     aggregate, store) / pooled scope, and peak memory (``ru_maxrss`` of the process, and of
     the largest forked part);
   - ``center``: one visit of a center changes, then ``services.recompute_scope(code)``;
   - ``floor``: the very SELECTs ``load_cohort`` issues (captured), run again with a bare
     psycopg cursor (binary where the read is) and fetched into tuples: what PostgreSQL and
     the driver alone take to hand over the rows, no record built;
   - ``dashboard`` (unless ``--no-dashboard``): server time of dashboard requests through
     Django's test Client (pooled and one center, cold and warm body cache).

   and prints the best and the median of each figure.

``--profile all`` runs the all-scopes recompute once under cProfile and prints the top
functions (``--profile center`` likewise).
"""
import argparse
import cProfile
import io
import json
import os
import pstats
import resource
import statistics
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_URL = "postgres://postgres@127.0.0.1:5432/registry_bench"
SEED = 2026
BENCH_CENTER_PREFIX = "c"


# Set-up --------------------------------------------------------------------------------------


def configure(database_url):
    """Point Django at the bench database (before it is imported) and start it."""
    sys.path.insert(0, str(ROOT))
    os.environ["DATABASE_URL"] = database_url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "registry.settings")
    # No broker: nothing here queues tasks, and a stray one must not reach a shared Redis.
    os.environ["CELERY_BROKER_URL"] = ""
    import django

    django.setup()


def conninfo(database_url, dbname=None):
    """A psycopg connection string from a postgres:// URL, optionally for another database."""
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    url = database_url
    if url.startswith("postgres://"):
        url = "postgresql://" + url[len("postgres://"):]
    params = conninfo_to_dict(url)
    if dbname:
        params["dbname"] = dbname
    return make_conninfo(**params)


def database_name(database_url):
    from psycopg.conninfo import conninfo_to_dict

    return conninfo_to_dict(conninfo(database_url))["dbname"]


def recreate_database(database_url, drop):
    """Create the bench database (dropping it first when ``drop``); True when it is new."""
    import psycopg
    from psycopg import sql

    name = database_name(database_url)
    with psycopg.connect(conninfo(database_url, "postgres"), autocommit=True) as admin:
        exists = admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone()
        if exists and drop:
            admin.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))
            exists = None
        if not exists:
            admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
            return True
    return False


def cohort_present(patients, centers):
    from django.db.utils import ProgrammingError

    from registry.centers.models import Center
    from registry.clinical.models import Patient

    try:
        return (Patient.objects.count() == patients
                and Center.objects.filter(code__startswith=BENCH_CENTER_PREFIX).count() == centers)
    except ProgrammingError:  # not migrated yet
        return False


# Generation ----------------------------------------------------------------------------------


def center_code(index):
    return f"{BENCH_CENTER_PREFIX}{index + 1:03d}"


def patients_per_center(patients, centers):
    base, extra = divmod(patients, centers)
    return [base + (1 if i < extra else 0) for i in range(centers)]


def copy_plan(model):
    """(table, columns, value getters) of a model's concrete fields, for COPY."""
    from django.db import models

    columns, getters = [], []
    for field in model._meta.concrete_fields:
        columns.append(field.column)
        if field.primary_key:
            getters.append(("pk", None))
        elif isinstance(field, models.ForeignKey):
            getters.append(("fk", field.name))
        elif isinstance(field, models.JSONField):
            getters.append(("json", field.attname))
        elif getattr(field, "auto_now", False) or getattr(field, "auto_now_add", False):
            getters.append(("now", None))
        else:
            getters.append(("attr", field.attname))
    return model._meta.db_table, columns, getters


def copy_rows(cursor, model, objects, now):
    """Give ``objects`` ids from the table's sequence and COPY them in."""
    from psycopg import sql

    if not objects:
        return
    table, columns, getters = copy_plan(model)
    ids = cursor.execute(
        "SELECT nextval(pg_get_serial_sequence(%s, 'id')) FROM generate_series(1, %s)",
        [table, len(objects)],
    ).fetchall()
    for obj, (pk,) in zip(objects, ids):
        obj.pk = pk
    statement = sql.SQL("COPY {} ({}) FROM STDIN").format(
        sql.Identifier(table), sql.SQL(", ").join(map(sql.Identifier, columns))
    )
    dumps = json.dumps
    with cursor.copy(statement) as copy:
        for obj in objects:
            row = []
            for kind, name in getters:
                if kind == "attr":
                    row.append(getattr(obj, name))
                elif kind == "fk":
                    related = getattr(obj, name)
                    row.append(None if related is None else related.pk)
                elif kind == "json":
                    row.append(dumps(getattr(obj, name)))
                elif kind == "pk":
                    row.append(obj.pk)
                else:
                    row.append(now)
            copy.write_row(row)


class LightRecords:
    """Stand-ins for the clinical model classes while ``build_cohort`` runs: plain objects
    with the models' field defaults, several times cheaper to make than model instances
    (``Model.__init__`` was 60% of the generation). The generator's logic, random draws and
    values are untouched; only the containers differ, and COPY reads the same attributes."""

    def __init__(self):
        from registry.clinical import synthetic
        from django.db import models

        self.module = synthetic
        self.names = ("Patient", "PriorTreatment", "TreatmentEpisode", "DoseChange", "Visit",
                      "AdverseEvent")
        self.light = {}
        for name in self.names:
            model = getattr(synthetic, name)
            defaults = {"pk": None}
            for field in model._meta.concrete_fields:
                if field.primary_key:
                    continue
                if isinstance(field, models.ForeignKey):
                    defaults[field.name] = None
                elif not isinstance(field, models.JSONField):  # the generator sets every list
                    defaults[field.attname] = field.get_default()
            self.light[name] = type(name, (), {**defaults, "__init__": _light_init})

    def __enter__(self):
        self.saved = {name: getattr(self.module, name) for name in self.names}
        for name, cls in self.light.items():
            setattr(self.module, name, cls)
        return self

    def __exit__(self, *exc):
        for name, model in self.saved.items():
            setattr(self.module, name, model)


def _light_init(self, **values):
    self.__dict__.update(values)


COHORT_TABLES = ("patients", "prior_treatments", "episodes", "dose_changes", "visits",
                 "adverse_events")


def generate_centers(job):
    """Worker: build and COPY the cohorts of some centers; returns counts by table."""
    import psycopg
    from django.utils import timezone

    from registry.centers.models import Center
    from registry.clinical import models as clinical
    from registry.clinical.synthetic import build_cohort

    database_url, parts, light = job
    models_of = {
        "patients": clinical.Patient, "prior_treatments": clinical.PriorTreatment,
        "episodes": clinical.TreatmentEpisode, "dose_changes": clinical.DoseChange,
        "visits": clinical.Visit, "adverse_events": clinical.AdverseEvent,
    }
    counts = dict.fromkeys(COHORT_TABLES, 0)
    now = timezone.now()
    with psycopg.connect(conninfo(database_url)) as connection:
        with connection.cursor() as cursor:
            for center_id, code, size, seed in parts:
                center = Center(pk=center_id, code=code)
                if light:
                    with LightRecords():
                        cohort = build_cohort([center], size, seed=seed)
                else:
                    cohort = build_cohort([center], size, seed=seed)
                for attribute in COHORT_TABLES:  # parents before children
                    objects = getattr(cohort, attribute)
                    copy_rows(cursor, models_of[attribute], objects, now)
                    counts[attribute] += len(objects)
                connection.commit()
    return counts


def generate(database_url, patients, centers, workers, light=True):
    """Centers with their lab ranges, then each center's cohort (COPY, ``workers`` processes)."""
    import multiprocessing

    from django.db import connection, connections

    from registry.centers.models import Center, LabRange
    from registry.clinical.synthetic import REFERENCE_RANGES

    started = time.perf_counter()
    made = Center.objects.bulk_create([
        Center(code=center_code(i), name=f"Bench hospital {i + 1}", country="FR")
        for i in range(centers)
    ])
    LabRange.objects.bulk_create([
        LabRange(center=center, analyte=analyte, lower=lower, upper=upper)
        for center in made for analyte, (lower, upper) in REFERENCE_RANGES.items()
    ])
    sizes = patients_per_center(patients, centers)
    jobs = [(c.pk, c.code, size, SEED + i) for i, (c, size) in enumerate(zip(made, sizes))]
    connections.close_all()  # the forked workers open their own connections
    if workers > 1:
        chunks = [jobs[i::workers * 4] for i in range(workers * 4)]
        with multiprocessing.get_context("fork").Pool(workers) as pool:
            results = pool.map(
                generate_centers, [(database_url, chunk, light) for chunk in chunks if chunk]
            )
    else:
        results = [generate_centers((database_url, jobs, light))]
    totals = dict.fromkeys(COHORT_TABLES, 0)
    for result in results:
        for key, value in result.items():
            totals[key] += value
    loaded = time.perf_counter() - started
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE")
    return totals, loaded, time.perf_counter() - started


# Measurements (each in its own subprocess) ---------------------------------------------------


def peak_rss_mb():
    """ru_maxrss (kB on Linux) of this process and of its largest waited-for child, in MB."""
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return round(own), round(children)


def _pss_kb(pid):
    """Proportional set size of a process (shared pages divided among their sharers)."""
    try:
        with open(f"/proc/{pid}/smaps_rollup") as rollup:
            for line in rollup:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except OSError:  # the process is gone
        pass
    return 0


def _descendants(pid):
    found = []
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children") as children:
                for child in children.read().split():
                    found += [int(child), *_descendants(int(child))]
    except OSError:
        pass
    return found


@contextmanager
def peak_total_memory(interval=0.5):
    """The peak, sampled every ``interval`` s (reading smaps_rollup takes the target's memory
    map lock: sampled often, it slows the parts' allocations), of the summed proportional set sizes of this
    process and its descendants (the forked parts): what the recompute holds in memory at
    once, pages shared between the processes counted once. ``result["mb"]`` after the
    block (0 where /proc has no smaps_rollup)."""
    import threading

    result = {"mb": 0}
    done = threading.Event()

    def sample():
        me = os.getpid()
        while not done.is_set():
            total = sum(_pss_kb(pid) for pid in [me, *_descendants(me)])
            result["mb"] = max(result["mb"], round(total / 1024))
            done.wait(interval)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        yield result
    finally:
        done.set()
        sampler.join()


@contextmanager
def timed_calls(module, names, totals):
    """Wrap ``module.<name>`` functions to add their wall time to ``totals[name]``."""
    originals = {name: getattr(module, name) for name in names}

    def wrap(name, function):
        def timed(*args, **kwargs):
            started = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                totals[name] = totals.get(name, 0.0) + time.perf_counter() - started
        return timed

    for name, function in originals.items():
        setattr(module, name, wrap(name, function))
    try:
        yield totals
    finally:
        for name, function in originals.items():
            setattr(module, name, function)


#: services' functions timed for the breakdown (those present in this version of services).
BREAKDOWN = ("read_cohort", "store_snapshot")
#: Inside "compute": functions services calls, timed on their own (they nest), so these are
#: "of which" figures, not a partition.
COMPUTE_PARTS = ("episode_facts", "aggregate", "by_enrolment_year", "center_breakdown")


@contextmanager
def gc_time(totals):
    """Add the wall time the cyclic garbage collector runs to ``totals["gc_s"]``."""
    import gc

    started = []

    def callback(phase, info):
        if phase == "start":
            started.append(time.perf_counter())
        elif started:
            totals["gc_s"] = totals.get("gc_s", 0.0) + time.perf_counter() - started.pop()

    gc.callbacks.append(callback)
    try:
        yield totals
    finally:
        gc.callbacks.remove(callback)


def breakdown_of(total, parts):
    fingerprint = parts.get("fingerprint", 0.0)
    read = parts.get("read_cohort", 0.0)
    store = parts.get("store_snapshot", 0.0)
    result = {
        "total_s": total,
        "fingerprint_s": fingerprint,
        "read_s": read,
        "compute_s": total - fingerprint - read - store,
        "store_s": store,
        "gc_s": parts.get("gc_s", 0.0),
    }
    for name in COMPUTE_PARTS:
        result[f"{name}_s"] = parts.get(name)
    return result


@contextmanager
def timed_services():
    from endpoints import services

    names = [name for name in (*BREAKDOWN, *COMPUTE_PARTS) if hasattr(services, name)]
    with timed_calls(services, names, {}) as parts, gc_time(parts):
        # The fingerprint's queries: InputSummaries.read, a classmethod (wrapped on the class,
        # which pickles as before).
        read = services.InputSummaries.__dict__["read"]

        def timed_read(cls, *args, **kwargs):
            started = time.perf_counter()
            try:
                return read.__func__(cls, *args, **kwargs)
            finally:
                parts["fingerprint"] = parts.get("fingerprint", 0.0) + time.perf_counter() - started

        services.InputSummaries.read = classmethod(timed_read)
        try:
            yield parts
        finally:
            services.InputSummaries.read = read


def measure_all(_args):
    """The nightly run, with each part's phases as the parts report them (a forked part's
    calls cannot be timed from here) and the pooled scope's time here."""
    from django.db import connection

    from endpoints import services

    connection.ensure_connection()
    rss_before, _children = peak_rss_mb()
    seen = {}
    store_pooled = services.store_pooled

    def timed_store_pooled(results, job):
        seen["parts"] = [dict(result.seconds) for result in results]
        seen["parts_done"] = time.perf_counter()
        try:
            return store_pooled(results, job)
        finally:
            seen["pooled_s"] = time.perf_counter() - seen["parts_done"]

    services.store_pooled = timed_store_pooled
    try:
        with timed_services() as parts, peak_total_memory() as memory:
            started = time.perf_counter()
            scopes = services.recompute_all_scopes()
            total = time.perf_counter() - started
    finally:
        services.store_pooled = store_pooled
    own, children = peak_rss_mb()
    result = {
        "total_s": total,
        "parts_s": seen["parts_done"] - started, "pooled_s": seen["pooled_s"],
        "gc_s": parts.get("gc_s", 0.0), "part_count": len(seen["parts"]),
        "scopes": len(scopes), "rss_before_mb": rss_before, "peak_rss_mb": own,
        "peak_rss_worker_mb": children, "peak_total_pss_mb": memory["mb"],
    }
    for phase in ("read", "facts", "aggregate", "store"):
        # The slowest part's figure: the parts run side by side.
        result[f"part_{phase}_s"] = max(part.get(phase, 0.0) for part in seen["parts"])
    if "read" not in seen["parts"][0]:  # done in this process: timed here
        result["part_read_s"] = parts.get("read_cohort", 0.0)
    return result


def pick_center(code=None):
    from registry.centers.models import Center

    codes = list(Center.objects.values_list("code", flat=True))
    return code if code else codes[len(codes) // 2]


def change_one_visit(code):
    """Change one visit of the center as a save would (new value, version and updated_at),
    with ``update()``: no signal, so no recompute task is queued behind the bench's back."""
    from django.db.models import F
    from django.utils import timezone

    from registry.clinical.models import Visit

    visit = Visit.objects.filter(patient__center__code=code).order_by("-date", "pk").first()
    easi = visit.easi
    if easi is not None:
        easi = easi + 1 if easi < 70 else easi - 1
    Visit.objects.filter(pk=visit.pk).update(
        easi=easi, version=F("version") + 1, updated_at=timezone.now()
    )


def measure_center(args):
    from endpoints import services
    from endpoints.models import Snapshot

    code = pick_center(args.center)
    if not Snapshot.objects.filter(scope=code).exists():
        services.recompute_scope(code)
    change_one_visit(code)
    with timed_services() as parts:
        started = time.perf_counter()
        snapshot = services.recompute_scope(code)
        total = time.perf_counter() - started
    result = breakdown_of(total, parts)
    recomputed = snapshot.fingerprint == services.inputs_fingerprint(code)
    started = time.perf_counter()
    services.recompute_scope(code)  # unchanged: the fingerprint says so, nothing is read
    unchanged = time.perf_counter() - started
    result.update(center=code, patients=snapshot.patients, visits=snapshot.visits,
                  recomputed=recomputed, unchanged_s=unchanged)
    return result


def captured_selects(center_codes=None):
    """The statements ``load_cohort`` sends, as (sql, params, binary): those Django runs
    (parameters inlined by the driver), and those read in binary format on PostgreSQL
    (``selectors.binary_rows``), which Django does not see."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from endpoints import selectors

    binary = []
    binary_rows = selectors.binary_rows

    def recording(queryset, chunked):
        binary.append((*queryset.query.sql_with_params(), True))
        return binary_rows(queryset, chunked)

    selectors.binary_rows = recording
    try:
        with CaptureQueriesContext(connection) as captured:
            selectors.load_cohort(center_codes)
    finally:
        selectors.binary_rows = binary_rows
    selects = []
    for query in captured.captured_queries:
        sql = query["sql"]
        if sql.startswith("SELECT "):  # not BEGIN, SET TRANSACTION, COMMIT
            selects.append((sql, None, False))
    return selects + binary


def fetch_floor(database_url, statements):
    """Run the statements with a bare psycopg cursor (binary where the read is binary, with
    the read's loaders), fetching every row into tuples."""
    import psycopg

    from endpoints.selectors import raw_timestamps

    with psycopg.connect(conninfo(database_url)) as bare:
        with bare.cursor() as cursor:
            raw_timestamps(cursor)
            cursor.execute("SELECT 1")
            started = time.perf_counter()
            rows = 0
            for sql, params, binary in statements:
                cursor.execute(sql, params, binary=binary)
                rows += len(cursor.fetchall())
            return time.perf_counter() - started, rows


def measure_floor(args):
    from django.db import connection

    code = pick_center(args.center)
    pooled = captured_selects()
    one = captured_selects([code])
    connection.close()
    pooled_s, pooled_rows = fetch_floor(args.database_url, pooled)
    center_s, center_rows = fetch_floor(args.database_url, one)
    return {"pooled_s": pooled_s, "pooled_rows": pooled_rows, "queries": len(pooled),
            "center_s": center_s, "center_rows": center_rows}


def measure_dashboard(args):
    from django.contrib.auth import get_user_model
    from django.core.cache import cache
    from django.test import Client
    from django.test.utils import setup_test_environment
    from django_otp import DEVICE_ID_SESSION_KEY
    from django_otp.plugins.otp_totp.models import TOTPDevice

    from endpoints import services
    from endpoints.models import POOLED, Snapshot

    setup_test_environment()
    code = pick_center(args.center)
    for scope in (POOLED, code):
        if not Snapshot.objects.filter(scope=scope).exists():
            services.recompute_scope(scope)
    user, created = get_user_model().objects.get_or_create(
        username="bench-coordinator", defaults={"is_coordinator": True}
    )
    if created:
        user.set_unusable_password()
        user.save()
    device = TOTPDevice.objects.filter(user=user, confirmed=True).first() or (
        TOTPDevice.objects.create(user=user, name="bench", confirmed=True)
    )
    client = Client()
    client.force_login(user)
    session = client.session
    session[DEVICE_ID_SESSION_KEY] = device.persistent_id
    session.save()

    # Warm the process (templates compiled, URLconf loaded) on another center's page, so that
    # "cold" measures a body rendered from a snapshot, not the process's first request.
    from registry.centers.models import Center

    other = Center.objects.exclude(code=code).values_list("code", flat=True).first() or code
    if not Snapshot.objects.filter(scope=other).exists():
        services.recompute_scope(other)
    client.get(f"/dashboards/centers/{other}/")
    result = {}
    for name, url in (("pooled", "/dashboards/pooled/"), ("center", f"/dashboards/centers/{code}/")):
        times = []
        cache.clear()  # the default cache is this process's own (locmem)
        for _ in range(6):
            started = time.perf_counter()
            response = client.get(url)
            times.append(time.perf_counter() - started)
            if response.status_code != 200:
                raise RuntimeError(f"{url}: HTTP {response.status_code}")
        result[f"{name}_cold_s"] = times[0]
        result[f"{name}_warm_s"] = min(times[1:])
        result[f"{name}_bytes"] = len(response.content)
    return result


def profile(args):
    from endpoints import services

    profiler = cProfile.Profile()
    code = pick_center(args.center)
    if args.profile == "center":
        services.recompute_scope(code)
        change_one_visit(code)
        profiler.runcall(services.recompute_scope, code)
    else:
        profiler.runcall(services.recompute_all_scopes)
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out).sort_stats("cumulative")
    stats.print_stats(45)
    stats.sort_stats("tottime").print_stats(30)
    print(out.getvalue())


MEASURES = {"all": measure_all, "center": measure_center, "floor": measure_floor,
            "dashboard": measure_dashboard}


def run_measure(args, kind):
    """One measurement in a fresh interpreter; its JSON result."""
    command = [sys.executable, str(Path(__file__).resolve()), "--database-url", args.database_url,
               "--measure", kind]
    if args.center:
        command += ["--center", args.center]
    done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT)
    if done.returncode != 0:
        sys.stderr.write(done.stdout[-3000:] + done.stderr[-3000:])
        raise RuntimeError(f"measurement {kind} failed")
    return json.loads(done.stdout.strip().splitlines()[-1])


# Report --------------------------------------------------------------------------------------


def summary(values):
    return min(values), statistics.median(values)


def print_figures(title, results, keys, unit="s"):
    print(f"\n{title}")
    for key, label in keys:
        values = [r[key] for r in results if r.get(key) is not None]
        if not values:
            continue
        best, median = summary(values)
        if unit == "s":
            print(f"  {label:<44} best {best:8.3f} s   median {median:8.3f} s   "
                  f"runs {', '.join(f'{v:.3f}' for v in values)}")
        else:
            print(f"  {label:<44} best {best:8.0f} {unit}  median {median:8.0f} {unit}  "
                  f"runs {', '.join(f'{v:.0f}' for v in values)}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--patients", type=int, default=100_000)
    parser.add_argument("--centers", type=int, default=100)
    parser.add_argument("--database-url", default=os.environ.get("BENCH_DATABASE_URL", DEFAULT_URL))
    parser.add_argument("--reuse", action="store_true",
                        help="keep the database when it already holds the requested cohort")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1),
                        help="processes generating the cohort")
    parser.add_argument("--model-instances", action="store_true",
                        help="generate with real model instances (slower; same rows)")
    parser.add_argument("--center", help="the center of the one-center figures (default: the middle one)")
    parser.add_argument("--no-dashboard", action="store_true", help="skip the dashboard requests")
    parser.add_argument("--only", help="comma-separated measurements (all,center,floor,dashboard); "
                        "none: only generate")
    parser.add_argument("--profile", choices=("all", "center"),
                        help="profile one recompute with cProfile instead of measuring")
    parser.add_argument("--measure", choices=tuple(MEASURES), help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.measure:
        configure(args.database_url)
        print(json.dumps(MEASURES[args.measure](args)))
        return

    recreate_database(args.database_url, drop=False)
    configure(args.database_url)
    from django.core.management import call_command
    from django.db import connections

    if not (args.reuse and cohort_present(args.patients, args.centers)):
        connections.close_all()
        recreate_database(args.database_url, drop=True)
        started = time.perf_counter()
        call_command("migrate", verbosity=0)
        migrated = time.perf_counter() - started
        counts, loaded, total = generate(
            args.database_url, args.patients, args.centers, args.workers,
            light=not args.model_instances,
        )
        print(f"Generated {counts['patients']:,} patients in {args.centers} centers: "
              f"{counts['visits']:,} visits, {counts['episodes']:,} episodes, "
              f"{counts['dose_changes']:,} dose changes, {counts['prior_treatments']:,} prior "
              f"treatments, {counts['adverse_events']:,} adverse events")
        print(f"Generation: {loaded:.1f} s to build and COPY ({args.workers} processes), "
              f"{total:.1f} s with VACUUM ANALYZE (migrate before it: {migrated:.1f} s)", flush=True)
    else:
        call_command("migrate", verbosity=0)  # index migrations added since, if any
        print(f"Reusing {database_name(args.database_url)} ({args.patients:,} patients)", flush=True)
    connections.close_all()

    if args.profile:
        profile(args)
        return

    wanted = args.only.split(",") if args.only else ["all", "center", "floor", "dashboard"]
    wanted = [kind for kind in wanted if kind in MEASURES]  # --only none: generate only
    if not wanted:
        return
    if args.no_dashboard and "dashboard" in wanted:
        wanted.remove("dashboard")
    results = {kind: [] for kind in wanted}
    for run in range(args.runs):
        for kind in list(wanted):
            try:
                results[kind].append(run_measure(args, kind))
            except RuntimeError as error:
                if kind != "dashboard":
                    raise
                print(f"dashboard measurement skipped: {error}")
                wanted.remove(kind)
        print(f"run {run + 1}/{args.runs} done", flush=True)

    if results.get("all"):
        parts = results["all"][0]["part_count"]
        print_figures(f"All scopes (recompute_all_scopes: every center in {parts} parts side by "
                      "side, then the pooled scope)", results["all"], [
            ("total_s", "total"),
            ("parts_s", "  the parts (read, compute, store their centers)"),
            ("part_read_s", "    slowest part: read (read_cohort, with the fingerprints' summaries)"),
            ("part_facts_s", "    slowest part: facts, completeness, counts"),
            ("part_aggregate_s", "    slowest part: aggregate its centers"),
            ("part_store_s", "    slowest part: store its centers"),
            ("pooled_s", "  the pooled scope (merge, aggregate, store)"),
            ("gc_s", "cyclic GC in this process (included above)"),
        ])
        print_figures("Peak memory of the all-scopes recompute", results["all"], [
            ("peak_total_pss_mb", "all its processes at once (summed PSS)"),
            ("peak_rss_mb", "process (parent, ru_maxrss)"),
            ("peak_rss_worker_mb", "largest forked part"),
            ("rss_before_mb", "process before the recompute"),
        ], unit="MB")
    if results.get("floor"):
        print_figures("Floor: the same SELECTs, bare psycopg, fetchall into tuples", results["floor"], [
            ("pooled_s", "every row (pooled read)"), ("center_s", "one center's rows"),
        ])
        if results.get("all"):
            floor = summary([r["pooled_s"] for r in results["floor"]])[0]
            total = summary([r["total_s"] for r in results["all"]])[0]
            print(f"  all scopes / floor (best / best): {total / floor:.1f}x")
    if results.get("center"):
        first = results["center"][0]
        print_figures(f"One center ({first['center']}, {first['patients']} patients, "
                      f"{first['visits']} visits) after one visit changed (recompute_scope)",
                      results["center"], [
            ("total_s", "total"), ("fingerprint_s", "  fingerprint"), ("read_s", "  read"),
            ("compute_s", "  compute"), ("episode_facts_s", "    of which episode_facts"),
            ("aggregate_s", "    of which aggregate"), ("store_s", "  store"),
            ("gc_s", "cyclic GC (included above)"),
            ("unchanged_s", "unchanged scope (fingerprint hit)"),
        ])
    if results.get("dashboard"):
        print_figures("Dashboard requests (Django test Client, server time)", results["dashboard"], [
            ("pooled_cold_s", "pooled, body cache cold (warm process)"),
            ("pooled_warm_s", "pooled, body cache warm"),
            ("center_cold_s", "one center, body cache cold (warm process)"),
            ("center_warm_s", "one center, body cache warm"),
        ])
    print("\nRaw results:", json.dumps(results))


if __name__ == "__main__":
    main()
