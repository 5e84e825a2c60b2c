"""The registry's production stack on this machine, for the load and fault benchmarks.

``bench/load.py`` and ``bench/faults.py`` build it with :class:`Stack`:

- PostgreSQL: a dedicated database on the shared server (127.0.0.1:5432), or a private
  cluster (``initdb`` in a temporary directory, its own port) that ``faults.py`` may stop and
  restart without touching anyone else's databases;
- Redis: a private ``redis-server`` on a free port (the Celery broker), never the shared one;
- the web app under gunicorn as docker-compose.yml runs it (gunicorn.conf.py: (2 × CPUs) + 1
  sync workers; DEBUG off, a real secret key, collected static files served by WhiteNoise), a
  Celery worker
  (``--concurrency 2``) and Celery beat;
- seed data: centers with lab ranges, a synthetic cohort (registry/clinical/synthetic.py),
  investigator and PI accounts (PIs with a confirmed TOTP device) and first snapshots.

Every process is started in its own session, so that it and its children can be stopped as
a group; :meth:`Stack.teardown` stops what the stack started and nothing else. Nothing here
sends traffic anywhere but 127.0.0.1.

Run as a script it seeds a database (used by :meth:`Stack.seed`, in a subprocess with the
stack's environment):

    DATABASE_URL=... .venv/bin/python bench/_stack.py seed --centers 10 \
        --patients-per-center 150 --investigators 45 --pis 5 --out seed.json
"""
import argparse
import json
import os
import runpy
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
PASSWORD = "load-test-password-2026"
PG_BIN = Path("/usr/lib/postgresql") / (
    sorted(os.listdir("/usr/lib/postgresql"))[-1] if Path("/usr/lib/postgresql").exists() else "15"
) / "bin"


def log(message):
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def configured_gunicorn_workers():
    """The number of workers gunicorn.conf.py gives on this machine (what production runs)."""
    return runpy.run_path(str(ROOT / "gunicorn.conf.py"))["workers"]


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until(predicate, timeout, interval=0.2, what="condition"):
    """Poll ``predicate`` until true; bounded by ``timeout`` seconds. Returns the seconds
    waited, or raises TimeoutError."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        try:
            if predicate():
                return time.monotonic() - started
        except Exception:  # noqa: BLE001 - not ready yet
            pass
        time.sleep(interval)
    raise TimeoutError(f"{what} not reached within {timeout:.0f} s")


def stop_group(process, timeout=15):
    """SIGTERM a process started with start_new_session and its children; SIGKILL if need be."""
    if process is None or process.poll() is not None:
        return
    try:
        os.killpg(process.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        process.wait(timeout=10)


def static_up_to_date():
    """True when staticfiles/ has a manifest newer than every source static file (our own and
    the npm packages'), so collecting again would change nothing."""
    manifest = ROOT / "staticfiles" / "staticfiles.json"
    if not manifest.exists():
        return False
    collected = manifest.stat().st_mtime
    sources = [ROOT / "static"] + [ROOT / "node_modules" / name for name in ("bootstrap", "chart.js", "bootstrap-icons")]
    for source in sources:
        for folder, _dirs, files in os.walk(source):
            for name in files:
                if os.stat(os.path.join(folder, name)).st_mtime > collected:
                    return False
    return True


# PostgreSQL ----------------------------------------------------------------------------------


class Postgres:
    """The shared server (``private=False``) or a private cluster started here."""

    def __init__(self, private=False):
        self.private = private
        self.host = "127.0.0.1"
        self.port = 5432
        self.datadir = None
        if private:
            self.port = free_port()
            # Owned by postgres (the server refuses to run as root); removed at teardown.
            self.base = Path(tempfile.mkdtemp(prefix="registry-bench-pg-"))
            shutil.chown(self.base, "postgres", "postgres")
            self.datadir = self.base / "data"
            self.logfile = self.base / "postgres.log"

    def url(self, database, application_name=None):
        url = f"postgres://postgres@{self.host}:{self.port}/{database}"
        return f"{url}?application_name={application_name}" if application_name else url

    def connect(self, database="postgres", **kwargs):
        import psycopg

        return psycopg.connect(
            host=self.host, port=self.port, user="postgres", dbname=database,
            connect_timeout=5, **kwargs,
        )

    def ready(self):
        result = subprocess.run(
            [str(PG_BIN / "pg_isready"), "-q", "-h", self.host, "-p", str(self.port)],
            check=False,
        )
        return result.returncode == 0

    def _pg_ctl(self, *args):
        command = [str(PG_BIN / "pg_ctl"), "-D", str(self.datadir), *args]
        subprocess.run(["runuser", "-u", "postgres", "--", *command], check=True,
                       stdout=subprocess.DEVNULL, cwd="/tmp")

    def init(self):
        if not self.private:
            wait_until(self.ready, 30, what="the shared PostgreSQL server")
            return
        subprocess.run(
            ["runuser", "-u", "postgres", "--", str(PG_BIN / "initdb"), "-D", str(self.datadir),
             "-A", "trust", "-U", "postgres", "--no-sync", "-E", "UTF8"],
            check=True, stdout=subprocess.DEVNULL, cwd="/tmp",
        )
        with open(self.datadir / "postgresql.conf", "a") as conf:
            conf.write(
                f"\nport = {self.port}\nlisten_addresses = '127.0.0.1'\n"
                f"unix_socket_directories = '{self.datadir}'\nfsync = on\n"
                "max_connections = 100\nshared_buffers = 128MB\n"
            )
        self.start()

    def start(self):
        if self.private:
            self._pg_ctl("-l", str(self.logfile), "-w", "-t", "60", "start")
        else:
            subprocess.run(["pg_ctlcluster", "--skip-systemctl-redirect", self._cluster_version(),
                            "main", "start"], check=False)
        wait_until(self.ready, 60, what="PostgreSQL accepting connections")

    def stop(self):
        if self.private:
            self._pg_ctl("-m", "fast", "-w", "-t", "60", "stop")
        else:
            subprocess.run(["pg_ctlcluster", "--skip-systemctl-redirect", self._cluster_version(),
                            "main", "stop"], check=False)

    @staticmethod
    def _cluster_version():
        return sorted(os.listdir("/etc/postgresql"))[-1]

    def create_database(self, name):
        self.drop_database(name)
        with self.connect(autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')

    def drop_database(self, name):
        with self.connect(autocommit=True) as conn:
            conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = %s AND pid <> pg_backend_pid()", (name,)
            )
            conn.execute(f'DROP DATABASE IF EXISTS "{name}"')

    def teardown(self, keep=False):
        if not self.private:
            return
        if self.ready():
            try:
                self.stop()
            except subprocess.CalledProcessError:
                pass
        if keep:
            log(f"kept the private PostgreSQL cluster in {self.datadir} (start it with "
                f"runuser -u postgres -- {PG_BIN}/pg_ctl -D {self.datadir} start)")
        else:
            shutil.rmtree(self.base, ignore_errors=True)


# Redis -----------------------------------------------------------------------------------------


class Redis:
    """A private redis-server (the broker), started and stopped here."""

    def __init__(self, workdir):
        self.port = free_port()
        self.logfile = Path(workdir) / "redis.log"
        self.process = None

    @property
    def url(self):
        return f"redis://127.0.0.1:{self.port}/0"

    def ping(self):
        result = subprocess.run(["redis-cli", "-h", "127.0.0.1", "-p", str(self.port), "ping"],
                                capture_output=True, text=True, check=False, timeout=5)
        return result.stdout.strip() == "PONG"

    def start(self):
        output = open(self.logfile, "a")
        self.process = subprocess.Popen(
            ["redis-server", "--bind", "127.0.0.1", "--port", str(self.port), "--save", "",
             "--appendonly", "no", "--daemonize", "no"],
            stdout=output, stderr=subprocess.STDOUT, start_new_session=True, cwd="/tmp",
        )
        wait_until(self.ping, 20, what="Redis")

    def stop(self):
        """As the brief's ``redis-cli shutdown nosave``: queued messages are lost."""
        subprocess.run(["redis-cli", "-h", "127.0.0.1", "-p", str(self.port), "shutdown", "nosave"],
                       capture_output=True, check=False, timeout=10)
        if self.process is not None:
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                stop_group(self.process)
        self.process = None

    def teardown(self):
        if self.process is not None and self.process.poll() is None:
            self.stop()


# The stack -----------------------------------------------------------------------------------------


class Stack:
    """Database, broker, gunicorn, Celery worker and beat for one benchmark run."""

    def __init__(self, *, name, database, private_postgres=False, gunicorn_workers=None,
                 worker_concurrency=2, beat=True):
        self.name = name
        self.database = database
        self.workdir = Path(tempfile.mkdtemp(prefix=f"registry-{name}-"))
        self.postgres = Postgres(private=private_postgres)
        self.redis = Redis(self.workdir)
        self.port = free_port()
        self.gunicorn_workers = gunicorn_workers or configured_gunicorn_workers()
        self.worker_concurrency = worker_concurrency
        self.with_beat = beat
        self.web = self.worker = self.beat = None
        self.worker_stopped = False
        self.secret_key = secrets.token_urlsafe(50)
        self.base_url = f"http://127.0.0.1:{self.port}"

    # Environment -----------------------------------------------------------------------------

    def env(self, role="web"):
        env = {
            key: value for key, value in os.environ.items()
            if not key.startswith(("DJANGO_", "CELERY_", "DATABASE_URL"))
        }
        env.update({
            "DJANGO_SETTINGS_MODULE": "registry.settings",
            # The worker's connections are named, so the fault script can see what it runs.
            "DATABASE_URL": self.postgres.url(self.database, application_name=f"{self.name}-{role}"),
            "CELERY_BROKER_URL": self.redis.url,
            "DJANGO_SECRET_KEY": self.secret_key,
            "DJANGO_DEBUG": "false",
            "DJANGO_ALLOWED_HOSTS": "127.0.0.1",
            # Plain HTTP on the loopback: no TLS terminator in front as in production.
            "DJANGO_SECURE": "false",
            "DJANGO_MEDIA_ROOT": str(self.workdir / "media"),
            "DJANGO_LOG_LEVEL": "INFO" if role == "worker" else "WARNING",
            "PYTHONUNBUFFERED": "1",
        })
        return env

    def manage(self, *args, timeout=600):
        subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=self.env("setup"),
                       check=True, timeout=timeout)

    # Set-up ----------------------------------------------------------------------------------

    def setup(self, *, centers, patients_per_center, investigators, pis, collectstatic=False):
        """Servers up, database created, migrated and seeded, static files collected.
        Returns the seed description (accounts, centers)."""
        log(f"work directory {self.workdir}")
        self.postgres.init()
        self.redis.start()
        log(f"PostgreSQL {'private cluster' if self.postgres.private else 'shared server'} on "
            f"port {self.postgres.port}, database {self.database}; private Redis on port "
            f"{self.redis.port}")
        self.postgres.create_database(self.database)
        self.manage("migrate", "--noinput", "-v0")
        if collectstatic or not static_up_to_date():
            # What `make static` does; with Brotli installed (a locust dependency) WhiteNoise
            # also writes .br files, which takes over a minute on two cores.
            log("collecting static files")
            self.manage("collectstatic", "--noinput", "-v0")
        else:
            log("static files already collected and up to date (staticfiles/staticfiles.json)")
        started = time.monotonic()
        out = self.workdir / "seed.json"
        env = {**self.env("setup"), "CELERY_BROKER_URL": ""}
        subprocess.run(
            [sys.executable, str(Path(__file__).resolve()), "seed", "--centers", str(centers),
             "--patients-per-center", str(patients_per_center), "--investigators",
             str(investigators), "--pis", str(pis), "--out", str(out)],
            cwd=ROOT, env=env, check=True, timeout=900,
        )
        seed = json.loads(out.read_text())
        log(f"seeded {seed['patients']} patients, {seed['visits']} visits in {len(seed['centers'])} "
            f"centers, {len(seed['investigators'])} investigators, {len(seed['pis'])} PIs "
            f"({time.monotonic() - started:.0f} s)")
        return seed

    def _spawn(self, role, command):
        logfile = open(self.workdir / f"{role}.log", "a")
        return subprocess.Popen(command, cwd=ROOT, env=self.env(role), stdout=logfile,
                                stderr=subprocess.STDOUT, start_new_session=True)

    def start_web(self):
        self.web = self._spawn("web", [
            str(BIN / "gunicorn"), "--config", "gunicorn.conf.py", "registry.wsgi:application",
            "--bind", f"127.0.0.1:{self.port}", "--workers", str(self.gunicorn_workers),
            "--access-logfile", str(self.workdir / "access.log"),
            # Not the production command's: request time in the access log, and a control
            # socket of our own (the default path is shared by every gunicorn of the user).
            "--access-logformat", '%(h)s %(t)s "%(r)s" %(s)s %(b)s %(M)sms',
            "--control-socket", str(self.workdir / "gunicorn.ctl"),
        ])
        wait_until(self._web_up, 60, what="gunicorn")

    def _web_up(self):
        with urllib.request.urlopen(f"{self.base_url}/accounts/login/", timeout=5) as response:
            return response.status == 200

    def spawn_worker(self):
        (self.workdir / "worker.log").open("a").write(f"--- started {time.time():.3f}\n")
        self.worker = self._spawn("worker", [
            str(BIN / "celery"), "-A", "registry", "worker", "-l", "info", "--concurrency",
            str(self.worker_concurrency), "--hostname", f"{self.name}@%h",
        ])
        self.worker_stopped = False

    def start_worker(self):
        self.spawn_worker()
        wait_until(lambda: "ready." in self.worker_log(), 60, what="the Celery worker")

    def worker_log(self):
        text = (self.workdir / "worker.log").read_text(errors="replace")
        return text[text.rfind("--- started"):]

    def start_beat(self):
        self.beat = self._spawn("beat", [
            str(BIN / "celery"), "-A", "registry", "beat", "-l", "info", "--schedule",
            str(self.workdir / "celerybeat-schedule"),
        ])

    def start(self):
        self.start_web()
        self.start_worker()
        if self.with_beat:
            self.start_beat()
        log(f"gunicorn ({self.gunicorn_workers} workers) on {self.base_url}, Celery worker "
            f"(concurrency {self.worker_concurrency}){', beat' if self.with_beat else ''}")

    def kill_worker(self):
        """SIGKILL the worker and its pool processes at once, as an OOM kill would."""
        self.worker_stopped = True
        os.killpg(self.worker.pid, signal.SIGKILL)
        self.worker.wait(timeout=10)

    def supervise(self):
        """Start again a worker or beat that exited by itself, as docker-compose.yml's
        ``restart: unless-stopped`` does (not one this script stopped). Returns
        [(role, exit code)] of what was restarted."""
        restarted = []
        if self.worker is not None and not self.worker_stopped and self.worker.poll() is not None:
            restarted.append(("worker", self.worker.returncode))
            try:  # pool processes left behind, if any
                os.killpg(self.worker.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.spawn_worker()
        if self.beat is not None and self.beat.poll() is not None:
            restarted.append(("beat", self.beat.returncode))
            self.start_beat()
        return restarted

    def pids(self):
        """Process ids of the stack's processes and their children, by role."""
        import psutil

        roles = {}
        for role, process in (("web", self.web), ("worker", self.worker), ("beat", self.beat),
                              ("redis", self.redis.process)):
            if process is None or process.poll() is not None:
                continue
            try:
                parent = psutil.Process(process.pid)
                roles[role] = [parent.pid, *(child.pid for child in parent.children(recursive=True))]
            except psutil.NoSuchProcess:
                pass
        return roles

    def teardown(self, keep=False):
        for process in (self.beat, self.worker, self.web):
            stop_group(process)
        self.redis.teardown()
        if not keep:
            try:
                self.postgres.drop_database(self.database)
            except Exception as error:  # noqa: BLE001 - report, go on tearing down
                log(f"could not drop {self.database}: {error}")
        else:
            log(f"kept database {self.database} ({self.postgres.url(self.database)})")
        self.postgres.teardown(keep=keep)
        if keep:
            log(f"logs kept in {self.workdir}")
        else:
            shutil.rmtree(self.workdir, ignore_errors=True)


# Seeding (run in a subprocess with the stack's environment) -------------------------------------


def seed(args):
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.contrib.auth.hashers import make_password
    from django.db import transaction
    from django_otp.plugins.otp_totp.models import TOTPDevice

    from endpoints import services
    from endpoints.models import StudySettings
    from registry.centers.models import Center, LabRange, Membership
    from registry.clinical.synthetic import REFERENCE_RANGES, build_cohort, save_cohort
    from registry.core.scoping import Role

    User = get_user_model()
    with transaction.atomic():
        centers = Center.objects.bulk_create([
            Center(code=f"ld{number:02d}", name=f"Load test hospital {number:02d}", country="FR")
            for number in range(1, args.centers + 1)
        ])
        LabRange.objects.bulk_create([
            LabRange(center=center, analyte=analyte, lower=lower, upper=upper)
            for center in centers for analyte, (lower, upper) in REFERENCE_RANGES.items()
        ])
        cohort = build_cohort(centers, args.patients_per_center, seed=2026)
        save_cohort(cohort)
        # One PBKDF2 hash for every account (same password): hashing is the login's cost.
        password = make_password(PASSWORD)
        investigators = [
            (f"load-inv-{number:03d}", centers[number % len(centers)])
            for number in range(args.investigators)
        ]
        pis = [(f"load-pi-{center.code}", center) for center in centers[: args.pis]]
        users = User.objects.bulk_create([
            User(username=username, password=password) for username, _center in investigators + pis
        ])
        by_name = {user.username: user for user in users}
        Membership.objects.bulk_create(
            [Membership(user=by_name[u], center=c, role=Role.INVESTIGATOR) for u, c in investigators]
            + [Membership(user=by_name[u], center=c, role=Role.PI) for u, c in pis]
        )
        keys = {username: secrets.token_hex(20) for username, _center in pis}
        TOTPDevice.objects.bulk_create([
            TOTPDevice(user=by_name[username], name="load test", confirmed=True, key=keys[username])
            for username, _center in pis
        ])
        StudySettings.current()
    # First snapshots, as the nightly run would leave them.
    services.recompute_all_scopes()
    description = {
        "centers": [center.code for center in centers],
        "patients": len(cohort.patients),
        "visits": len(cohort.visits),
        "password": PASSWORD,
        "investigators": [{"username": u, "center": c.code} for u, c in investigators],
        "pis": [{"username": u, "center": c.code, "key": keys[u]} for u, c in pis],
    }
    Path(args.out).write_text(json.dumps(description))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    seeding = sub.add_parser("seed")
    seeding.add_argument("--centers", type=int, default=10)
    seeding.add_argument("--patients-per-center", type=int, default=150)
    seeding.add_argument("--investigators", type=int, default=45)
    seeding.add_argument("--pis", type=int, default=5)
    seeding.add_argument("--out", required=True)
    args = parser.parse_args()
    if args.command == "seed":
        seed(args)


if __name__ == "__main__":
    main()
