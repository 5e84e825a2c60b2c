"""Load benchmark: simulated investigators and PIs against the production stack.

    .venv/bin/python bench/load.py [--users 50] [--duration 60] [--keep] [--json results.json]

Sets up its own stack on this machine (bench/_stack.py): a dedicated database
``registry_load`` on the PostgreSQL server at 127.0.0.1:5432 (created, migrated, seeded with
centers, accounts and a synthetic cohort), a private Redis, gunicorn as in docker-compose.yml
(gunicorn.conf.py's workers, DEBUG off, a real secret key, collected static files), a Celery
worker (concurrency 2) and Celery beat. Then, with locust (as a library, headless):

- investigators (``--users`` minus ``--pis``, spread over the centers) log in through the
  login form (CSRF), open their center's patient list, open a patient, open the visit form
  and save a visit through it, with think times between pages; every save uses a
  (patient, date) pair no other save uses, recorded with the values posted;
- PIs (one per center, ``--pis``) log in with their password and TOTP code, open their
  center's dashboard and poll its status endpoint every 2 s as the page does, fetching the
  re-rendered body when a new snapshot lands.

After the ramp-up (every user logged in) and a warm-up (``--warmup``, 15 s: the logins'
password hashing drains), it measures ``--duration`` seconds and prints
requests per second, p50/p95/p99 latency per page, errors, then checks that every visit the
simulation saved is in the database exactly once with the values posted, and that the
snapshots caught up: each center's and the pooled snapshot's visit count equals the
database's, and how long after the last save (and after each save) that was true.

Everything it started is stopped at the end; ``--keep`` keeps the database and the logs.
Nothing is sent anywhere but 127.0.0.1.
"""
# locust monkey-patches the standard library with gevent when imported: first.
import locust  # noqa: I001,F401
from locust import between, constant, task
from locust.contrib.fasthttp import FastHttpUser
from locust.env import Environment

import argparse
import hashlib
import hmac
import json
import os
import random
import re
import statistics
import struct
import subprocess
import sys
import time
from collections import defaultdict
from datetime import date, timedelta
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urlencode

import gevent

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _stack import ROOT, Stack, log  # noqa: E402

#: The dashboard page's polling period (endpoints/views.py POLL_MS).
POLL_SECONDS = 2.0
#: Pages whose p95 must stay under this (milliseconds).
P95_TARGET_MS = 200
#: The snapshots must show the last save within this (seconds).
LAG_TARGET_S = 5.0
CSRF_RE = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')
PATIENT_LINK_RE = re.compile(r'href="/patients/([a-z0-9-]+)/"')
CONFIG_RE = re.compile(r'<script id="dashboard-config" type="application/json">(.*?)</script>', re.S)
DUPLICATE_MESSAGE = "already has a visit on that date"


# Helpers -----------------------------------------------------------------------------------------


def totp(key_hex, at=None, step=30, digits=6):
    """RFC 6238 code of a django-otp TOTPDevice (hex key, 30 s step, 6 digits, t0 0)."""
    counter = int((time.time() if at is None else at) // step)
    digest = hmac.new(bytes.fromhex(key_hex), struct.pack(">Q", counter), hashlib.sha1).digest()
    offset = digest[-1] & 0x0F
    code = (struct.unpack(">I", digest[offset:offset + 4])[0] & 0x7FFFFFFF) % 10 ** digits
    return f"{code:0{digits}d}"


class FormParser(HTMLParser):
    """The fields of each <form> of a page, as a browser would submit them."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.forms = []
        self._form = None
        self._select = None
        self._textarea = None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "form":
            self._form = {"action": attrs.get("action") or "", "method": (attrs.get("method") or "get").lower(), "fields": {}}
            self.forms.append(self._form)
        elif self._form is None:
            return
        elif tag == "input" and attrs.get("name"):
            kind = (attrs.get("type") or "text").lower()
            if kind in ("submit", "button", "image", "file"):
                return
            if kind in ("checkbox", "radio") and "checked" not in attrs:
                return
            self._form["fields"][attrs["name"]] = attrs.get("value") or ""
        elif tag == "select" and attrs.get("name"):
            self._select = attrs["name"]
            self._form["fields"].setdefault(self._select, None)
        elif tag == "option" and self._select:
            value = attrs.get("value") or ""
            if self._form["fields"][self._select] is None or "selected" in attrs:
                self._form["fields"][self._select] = value
        elif tag == "textarea" and attrs.get("name"):
            self._textarea = attrs["name"]
            self._form["fields"][self._textarea] = ""

    def handle_data(self, data):
        if self._textarea and self._form is not None:
            self._form["fields"][self._textarea] += data

    def handle_endtag(self, tag):
        if tag == "form":
            self._form = None
        elif tag == "select":
            self._select = None
        elif tag == "textarea":
            self._textarea = None


def form_with(html, field):
    """The fields of the page's form that has ``field`` (None if no form has it)."""
    parser = FormParser()
    parser.feed(html)
    for form in parser.forms:
        if field in form["fields"]:
            return {name: value or "" for name, value in form["fields"].items()}
    return None


def visit_values(rng):
    """Plausible scores (no automatic data query fires on them)."""
    easi = round(rng.uniform(0.5, 40), 1)
    return {
        "iga": str(min(4, max(1, round(easi / 9)))),
        "easi": f"{easi:.1f}",
        "scorad": f"{min(103.0, easi * 1.3 + 12):.1f}",
        "bsa": f"{min(100.0, easi * 1.4 + 1):.1f}",
        "pruritus_nrs": str(rng.randint(0, 10)),
        "sleep_nrs": str(rng.randint(0, 10)),
        "dlqi": str(rng.randint(0, 30)),
        "poem": str(rng.randint(0, 28)),
    }


def percentile(values, q):
    if not values:
        return None
    ordered = sorted(values)
    if len(ordered) == 1:
        return ordered[0]
    position = (len(ordered) - 1) * q
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


# Shared simulation state ------------------------------------------------------------------------


class Simulation:
    """What the simulated users share: accounts to take, free (patient, date) pairs, the log
    of every save, and the phase of the run."""

    def __init__(self, seed, taken_dates, *, think=1.0, rng_seed=7):
        self.password = seed["password"]
        self.investigators = list(seed["investigators"])
        self.pis = list(seed["pis"])
        self.pages = max(1, -(-seed["patients_per_center"] // 50))
        self.taken = taken_dates  # patient code -> set of dates with a visit
        self.rng = random.Random(rng_seed)
        self.think = think
        self.saves = []
        self.logged_in = 0
        self.login_failures = 0
        self.accepting_saves = True
        self.saves_in_flight = 0
        self.samples = []  # (end time, name, ms, ok, status)
        self.notes = defaultdict(int)
        self.today = date.today()

    def allocate(self, patient):
        """A date in the last three years on which ``patient`` has no visit (nor a pending
        simulated one): each save's (patient, date) pair is unique."""
        taken = self.taken.setdefault(patient, set())
        for _ in range(1000):
            day = self.today - timedelta(days=self.rng.randint(1, 3 * 365))
            if day not in taken:
                taken.add(day)
                return day
        raise RuntimeError(f"no free visit date left for {patient}")

    def pause(self, low, high):
        gevent.sleep(self.rng.uniform(low, high) * self.think)

    def on_request(self, request_type, name, response_time, response_length, exception=None,
                   response=None, **kwargs):
        status = getattr(response, "status_code", None)
        self.samples.append((time.time(), name, response_time, exception is None, status))


# Simulated users ------------------------------------------------------------------------------


class RegistryUser(FastHttpUser):
    abstract = True
    sim: Simulation = None
    network_timeout = 60.0
    connection_timeout = 10.0

    ready = False

    def log_in(self, username, otp_key=None):
        """Log in through the form; a refused or failed attempt is an error, tried again a few
        times (bounded) so that a passing glitch does not lose the user."""
        for attempt in range(5):
            if attempt:
                gevent.sleep(5)
                if otp_key:  # a TOTP code is accepted once: wait for the next one
                    gevent.sleep(30 - time.time() % 30 + 1)
            page = self.client.get("/accounts/login/", name="login page")
            match = CSRF_RE.search(page.text or "")
            if not match:
                continue
            fields = {
                "csrfmiddlewaretoken": match.group(1), "username": username,
                "password": self.sim.password, "next": "",
                "otp_token": totp(otp_key) if otp_key else "",
            }
            with self.post_form("/accounts/login/", fields, name="login") as response:
                if response.status_code == 302:
                    response.success()
                    self.sim.logged_in += 1
                    self.ready = True
                    return True
                response.failure(f"login of {username} refused (HTTP {response.status_code})")
        self.sim.login_failures += 1
        return False

    def take(self, accounts):
        """This user's account, taken once (locust may start a user object again)."""
        if not accounts:
            return None
        return accounts.pop(0)

    def post_form(self, path, fields, name):
        return self.client.post(
            path, data=urlencode(fields), name=name, allow_redirects=False, catch_response=True,
            headers={"Content-Type": "application/x-www-form-urlencoded", "Referer": self.host + path},
        )


class Investigator(RegistryUser):
    """Opens the patient list, a patient, the visit form, and saves a visit."""

    wait_time = between(1, 3)

    def on_start(self):
        account = self.take(self.sim.investigators)
        if account is None:
            return
        self.username, self.center = account["username"], account["center"]
        self.log_in(self.username)

    @task
    def enter_a_visit(self):
        sim = self.sim
        if not self.ready or not sim.accepting_saves:
            gevent.sleep(1)
            return
        page = sim.rng.randint(1, sim.pages)
        listing = self.client.get(f"/centers/{self.center}/?page={page}", name="patient list")
        patients = PATIENT_LINK_RE.findall(listing.text or "") if listing.status_code == 200 else []
        if not patients:
            sim.pause(2, 4)
            return
        patient = sim.rng.choice(patients)
        sim.pause(1, 3)
        self.client.get(f"/patients/{patient}/", name="patient")
        sim.pause(1, 3)
        if not sim.accepting_saves:
            return
        form_page = self.client.get(f"/patients/{patient}/visits/new/", name="visit form")
        fields = form_with(form_page.text or "", "date") if form_page.status_code == 200 else None
        if fields is None:
            sim.pause(2, 4)
            return
        sim.pause(5, 15)  # filling the form in
        if not sim.accepting_saves:
            return
        visit_date = sim.allocate(patient)
        values = visit_values(sim.rng)
        fields.update(values, date=visit_date.isoformat())
        save = {
            "user": self.username, "center": self.center, "patient": patient,
            "date": visit_date.isoformat(), "easi": values["easi"], "attempts": 0,
            "outcome": None, "saved_at": None, "outage_pages": 0, "outage_kept_data": True,
            "errors": [],
        }
        sim.saves.append(save)
        sim.saves_in_flight += 1
        try:
            self.save_visit(patient, fields, save)
        finally:
            sim.saves_in_flight -= 1

    def save_visit(self, patient, fields, save):
        """POST the visit form; on an outage page, post what the page kept again (as a user
        pressing its button), a bounded number of times."""
        sim = self.sim
        path = f"/patients/{patient}/visits/new/"
        deadline = time.monotonic() + 180
        while save["attempts"] < 40 and time.monotonic() < deadline:
            save["attempts"] += 1
            with self.post_form(path, fields, name="visit save") as response:
                status = response.status_code
                body = response.text or ""
                if status == 302 and f"/patients/{patient}/" in response.headers.get("location", ""):
                    response.success()
                    save["outcome"], save["saved_at"] = "saved", time.time()
                    location = response.headers["location"].split("#")[0]
                    self.client.get(location, name="patient")
                    return
                if status == 200 and DUPLICATE_MESSAGE in body and save["attempts"] > 1:
                    # An earlier attempt committed but its answer was lost.
                    response.success()
                    save["outcome"], save["saved_at"] = "saved-earlier", time.time()
                    return
                if status == 503:
                    save["outage_pages"] += 1
                    # The page keeps the entries in a form that posts them again.
                    kept = form_with(body, "date")
                    if kept is None or kept.get("date") != save["date"] or kept.get("easi") != save["easi"]:
                        save["outage_kept_data"] = False
                    else:
                        fields = kept
                    response.failure("503 database unavailable")
                else:
                    message = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", body))[:160]
                    save["errors"].append(f"HTTP {status}: {message}")
                    response.failure(f"visit not saved (HTTP {status})")
                    if status == 200:  # refused by validation: a simulation error, no retry
                        save["outcome"] = "refused"
                        return
            gevent.sleep(3)
        save["outcome"] = "abandoned"


class PrincipalInvestigator(RegistryUser):
    """Keeps the center dashboard open: polls its status, fetches the body on a new snapshot."""

    wait_time = constant(POLL_SECONDS)

    def on_start(self):
        account = self.take(self.sim.pis)
        if account is None:
            return
        self.center = account["center"]
        if not self.log_in(account["username"], otp_key=account["key"]):
            return
        page = self.client.get(f"/dashboards/centers/{self.center}/", name="dashboard")
        match = CONFIG_RE.search(page.text or "")
        self.computed_at = json.loads(match.group(1)).get("computedAt") if match else None

    @task
    def poll(self):
        if not self.ready:
            return
        status = self.client.get(f"/dashboards/centers/{self.center}/status/", name="dashboard status",
                                 headers={"Accept": "application/json"})
        if status.status_code != 200:
            return
        try:
            computed_at = status.json().get("computed_at")
        except ValueError:
            return
        if computed_at and computed_at != self.computed_at:
            self.client.get(f"/dashboards/centers/{self.center}/live/", name="dashboard live",
                            headers={"Accept": "application/json"})
            self.computed_at = computed_at


# Watching the snapshots and the machine -------------------------------------------------------


WATCHER = r"""
import json, os, sys, time
import psycopg
dsn, out, interval, limit = sys.argv[1], sys.argv[2], float(sys.argv[3]), float(sys.argv[4])
parent, started, last, conn = os.getppid(), time.time(), {}, None
with open(out, "a") as f:
    while time.time() - started < limit and os.getppid() == parent:
        try:
            if conn is None or conn.closed:
                conn = psycopg.connect(dsn, autocommit=True, connect_timeout=2)
            rows = conn.execute("SELECT scope, extract(epoch FROM inputs_read_at), visits FROM endpoints_snapshot").fetchall()
            now = time.time()
            for scope, read_at, visits in rows:
                if last.get(scope) != (float(read_at), visits):
                    last[scope] = (float(read_at), visits)
                    f.write(json.dumps({"t": now, "scope": scope, "read_at": float(read_at), "visits": visits}) + "\n")
            f.flush()
        except Exception as error:
            f.write(json.dumps({"t": time.time(), "error": str(error)[:200]}) + "\n"); f.flush()
            try:
                conn and conn.close()
            except Exception:
                pass
            conn = None
        time.sleep(interval)
"""


class SnapshotWatcher:
    """A subprocess (no gevent) that records each snapshot change as it lands: when it was
    seen, the time its inputs were read, its visit count."""

    def __init__(self, stack, limit_seconds):
        self.path = stack.workdir / "snapshots.jsonl"
        dsn = stack.postgres.url(stack.database).replace("postgres://", "postgresql://")
        self.process = subprocess.Popen(
            [sys.executable, "-c", WATCHER, dsn, str(self.path), "0.2", str(limit_seconds)],
            cwd=ROOT, start_new_session=True,
        )

    def observations(self):
        if not self.path.exists():
            return []
        return [json.loads(line) for line in self.path.read_text().splitlines() if line.strip()]

    def stop(self):
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()


class MachineMonitor:
    """Load average, machine CPU use and the CPU time of the stack's processes."""

    def __init__(self, stack, database, extra_pids=None):
        import psutil

        self.psutil = psutil
        self.stack = stack
        self.database = database
        self.extra_pids = extra_pids or {}
        self.samples = []
        self.cpu = {}
        self.greenlet = None

    def _ours(self):
        procs = {}
        for role, pids in self.stack.pids().items():
            for pid in pids:
                procs[pid] = role
        procs[os.getpid()] = "locust"
        procs.update(self.extra_pids)
        for proc in self.psutil.process_iter(["pid", "cmdline"]):
            cmdline = " ".join(proc.info["cmdline"] or [])
            if cmdline.startswith("postgres:") and f" {self.database} " in cmdline:
                procs[proc.info["pid"]] = "postgres"
        return procs

    def sample(self):
        totals = defaultdict(float)
        for pid, role in self._ours().items():
            try:
                times = self.psutil.Process(pid).cpu_times()
                self.cpu[pid] = (role, times.user + times.system)
            except self.psutil.Error:
                pass
        for role, seconds in self.cpu.values():
            totals[role] += seconds
        times = self.psutil.cpu_times()
        self.samples.append({
            "t": time.time(), "load": os.getloadavg(), "cpu_busy": sum(times) - times.idle - getattr(times, "iowait", 0),
            "cpu_total": sum(times), "ours": dict(totals),
        })

    def run(self, interval=5.0):
        def loop():
            while True:
                try:
                    self.sample()
                except Exception:  # noqa: BLE001 - monitoring must not stop the run
                    pass
                gevent.sleep(interval)

        self.greenlet = gevent.spawn(loop)

    def stop(self):
        if self.greenlet is not None:
            self.greenlet.kill()
        self.sample()

    def summary(self, t0, t1):
        window = [s for s in self.samples if t0 - 5 <= s["t"] <= t1 + 5]
        if len(window) < 2:
            return {}
        first, last = window[0], window[-1]
        elapsed = last["t"] - first["t"]
        ncpu = os.cpu_count() or 1
        busy = (last["cpu_busy"] - first["cpu_busy"]) / max(1e-9, last["cpu_total"] - first["cpu_total"])
        ours = {
            role: round((last["ours"].get(role, 0) - first["ours"].get(role, 0)) / elapsed / ncpu * 100, 1)
            for role in sorted(set(last["ours"]) | set(first["ours"]))
        }
        ours_total = sum(ours.values())
        seconds = {role: round(last["ours"].get(role, 0) - first["ours"].get(role, 0), 1) for role in ours}
        loads = [s["load"][0] for s in window]
        return {
            "nproc": ncpu,
            "load_1min_min": round(min(loads), 2), "load_1min_max": round(max(loads), 2),
            "load_1min_mean": round(statistics.mean(loads), 2),
            "machine_cpu_busy_pct": round(busy * 100, 1),
            "stack_cpu_pct_by_role": ours,
            "stack_cpu_seconds_by_role": seconds, "seconds": round(elapsed, 1),
            "others_cpu_pct": round(max(0.0, busy * 100 - ours_total), 1),
        }


# Running ------------------------------------------------------------------------------------------


def taken_dates(stack):
    """patient code -> dates that already have a visit."""
    taken = defaultdict(set)
    with stack.postgres.connect(stack.database) as conn:
        for code, day in conn.execute(
            "SELECT p.code, v.date FROM clinical_visit v JOIN clinical_patient p ON p.id = v.patient_id"
        ):
            taken[code].add(day)
    return taken


def start_simulation(stack, seed, args):
    sim = Simulation(seed, taken_dates(stack), think=args.think)
    for cls in (Investigator, PrincipalInvestigator):
        cls.sim = sim
        cls.host = stack.base_url
    PrincipalInvestigator.fixed_count = args.pis
    Investigator.fixed_count = args.users - args.pis
    env = Environment(user_classes=[Investigator, PrincipalInvestigator], events=locust.events)
    env.events.request.add_listener(sim.on_request)
    runner = env.create_local_runner()
    runner.start(args.users, spawn_rate=args.spawn_rate)
    return sim, env, runner


def wait_logged_in(sim, users, timeout):
    started = time.monotonic()
    while sim.logged_in + sim.login_failures < users and time.monotonic() - started < timeout:
        gevent.sleep(0.2)
    return sim.logged_in


def stop_simulation(sim, runner, timeout=60):
    """No new saves; let the saves under way finish (their outcome is known), then stop."""
    sim.accepting_saves = False
    started = time.monotonic()
    while sim.saves_in_flight and time.monotonic() - started < timeout:
        gevent.sleep(0.1)
    runner.quit()


def page_stats(samples, t0, t1):
    by_name = defaultdict(list)
    for end, name, ms, ok, status in samples:
        if t0 <= end <= t1:
            by_name[name].append((ms, ok, status))
    stats = {}
    for name, rows in sorted(by_name.items()):
        times = [ms for ms, _ok, _status in rows]
        failures = [status for _ms, ok, status in rows if not ok]
        stats[name] = {
            "requests": len(rows), "failures": len(failures),
            "failure_statuses": dict(sorted(
                {str(s): failures.count(s) for s in set(failures)}.items()
            )),
            "rps": round(len(rows) / max(1e-9, t1 - t0), 2),
            "p50_ms": round(percentile(times, 0.50), 1), "p95_ms": round(percentile(times, 0.95), 1),
            "p99_ms": round(percentile(times, 0.99), 1), "max_ms": round(max(times), 1),
        }
    return stats


def check_visits(stack, sim, seeded_visits):
    """Every saved visit is in the database exactly once with the EASI posted; nothing the
    users were told failed was stored behind their back."""
    pairs = [(s["patient"], s["date"]) for s in sim.saves]
    with stack.postgres.connect(stack.database) as conn:
        rows = conn.execute(
            "SELECT p.code, v.date::text, v.easi::text, count(*) OVER (PARTITION BY p.code, v.date) "
            "FROM clinical_visit v JOIN clinical_patient p ON p.id = v.patient_id "
            "JOIN unnest(%s::text[], %s::date[]) AS w(code, day) ON w.code = p.code AND w.day = v.date",
            ([p for p, _d in pairs], [d for _p, d in pairs]),
        ).fetchall()
        total = conn.execute("SELECT count(*) FROM clinical_visit").fetchone()[0]
    found = defaultdict(list)
    for code, day, easi, _n in rows:
        found[(code, day)].append(easi)
    saved = [s for s in sim.saves if s["outcome"] in ("saved", "saved-earlier")]
    not_saved = [s for s in sim.saves if s["outcome"] not in ("saved", "saved-earlier")]
    lost = [s for s in saved if not found.get((s["patient"], s["date"]))]
    duplicated = [s for s in saved if len(found.get((s["patient"], s["date"]), [])) > 1]
    wrong = [s for s in saved if len(found.get((s["patient"], s["date"]), [])) == 1
             and float(found[(s["patient"], s["date"])][0]) != float(s["easi"])]
    stored_anyway = [s for s in not_saved if found.get((s["patient"], s["date"]))]
    return {
        "attempted": len(sim.saves), "saved": len(saved),
        "saved_after_retry": sum(1 for s in saved if s["attempts"] > 1),
        "not_saved": {k: sum(1 for s in not_saved if s["outcome"] == k) for k in ("refused", "abandoned", None)},
        "lost": len(lost), "duplicated": len(duplicated), "wrong_values": len(wrong),
        "stored_though_reported_failed": len(stored_anyway),
        "db_visits": total, "expected_db_visits": seeded_visits + len(saved) + len(stored_anyway),
        "examples": [s for s in (lost + duplicated + wrong)[:5]],
        "outage_pages": sum(s["outage_pages"] for s in sim.saves),
        "outage_pages_without_data": sum(1 for s in sim.saves if s["outage_pages"] and not s["outage_kept_data"]),
        "errors": [e for s in sim.saves for e in s["errors"]][:5],
    }


def db_counts(stack):
    """scope -> (database visit count, snapshot visit count)."""
    with stack.postgres.connect(stack.database) as conn:
        db = dict(conn.execute(
            "SELECT c.code, count(v.id) FROM centers_center c LEFT JOIN clinical_patient p ON p.center_id = c.id "
            "LEFT JOIN clinical_visit v ON v.patient_id = p.id GROUP BY c.code"
        ).fetchall())
        db["*"] = sum(db.values())
        snap = dict(conn.execute("SELECT scope, visits FROM endpoints_snapshot").fetchall())
    return {scope: (n, snap.get(scope)) for scope, n in db.items()}


def wait_caught_up(stack, timeout):
    """Poll until every snapshot's visit count equals the database's; the seconds waited
    (None on timeout) and the final counts."""
    started = time.monotonic()
    while True:
        counts = db_counts(stack)
        if all(n == s for n, s in counts.values()):
            return time.monotonic() - started, counts
        if time.monotonic() - started > timeout:
            return None, counts
        time.sleep(0.1)


def snapshot_lags(observations, saves, base_counts):
    """(per-save lags, saves never seen, lag after the last save).

    A scope's snapshot shows its k-th save (in the order the answers came) once its visit
    count reaches the count before the run plus k; the lag is from the save's answer to the
    first time the watcher saw that (for the save's center and the pooled scope, the later
    of the two). The simulation only adds visits, so counts only grow."""
    by_scope = defaultdict(list)
    for obs in observations:
        if "scope" in obs:
            by_scope[obs["scope"]].append((obs["t"], obs["visits"]))
    saved = sorted((s for s in saves if s["saved_at"] is not None), key=lambda s: s["saved_at"])
    seen_at = defaultdict(dict)  # id(save) -> scope -> time seen
    last_seen = {}
    for scope in {s["center"] for s in saved} | {"*"}:
        mine = [s for s in saved if scope in (s["center"], "*")]
        for k, save in enumerate(mine, start=1):
            target = base_counts.get(scope, 0) + k
            seen = next((t for t, visits in by_scope[scope] if visits >= target), None)
            seen_at[id(save)][scope] = seen
            if k == len(mine):
                last_seen[scope] = seen
    lags, missing = [], 0
    for save in saved:
        times = [seen_at[id(save)].get(scope) for scope in (save["center"], "*")]
        if None in times:
            missing += 1
        else:
            lags.append(max(0.0, max(times) - save["saved_at"]))
    final = None
    if saved and None not in last_seen.values():
        final = max(0.0, max(last_seen.values()) - saved[-1]["saved_at"])
    return lags, missing, final


def lag_summary(lags, missing):
    if not lags:
        return {"saves": 0, "not_seen": missing}
    return {
        "saves": len(lags), "not_seen": missing, "p50_s": round(percentile(lags, 0.5), 2),
        "p95_s": round(percentile(lags, 0.95), 2), "max_s": round(max(lags), 2),
    }


def print_pages(stats, title):
    print(f"\n{title}")
    print(f"  {'page':<18}{'requests':>9}{'rps':>8}{'p50 ms':>9}{'p95 ms':>9}{'p99 ms':>9}{'max ms':>9}{'errors':>8}")
    for name, s in stats.items():
        print(f"  {name:<18}{s['requests']:>9}{s['rps']:>8}{s['p50_ms']:>9}{s['p95_ms']:>9}"
              f"{s['p99_ms']:>9}{s['max_ms']:>9}{s['failures']:>8}")


def parse_args(argv=None, description=__doc__, users=50, duration=60, extend=None):
    parser = argparse.ArgumentParser(description=description.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    if extend is not None:
        extend(parser)
    parser.add_argument("--users", type=int, default=users, help="simulated users, PIs included")
    parser.add_argument("--pis", type=int, default=None, help="PIs among them (default: users / 10, at most one per center)")
    parser.add_argument("--duration", type=float, default=duration, help="measured seconds after the ramp-up")
    parser.add_argument("--spawn-rate", type=float, default=2.0, help="users started (logging in) per second")
    parser.add_argument("--warmup", type=float, default=15.0,
                        help="seconds between the last login and the measured window (the "
                             "logins' PBKDF2 backlog drains)")
    parser.add_argument("--think", type=float, default=1.0, help="scale of the think times")
    parser.add_argument("--centers", type=int, default=10)
    parser.add_argument("--patients-per-center", type=int, default=150)
    parser.add_argument("--database", default=None)
    parser.add_argument("--gunicorn-workers", type=int, default=None,
                        help="default: as gunicorn.conf.py, (2 × CPUs) + 1")
    parser.add_argument("--worker-concurrency", type=int, default=2, help="as docker-compose.yml")
    parser.add_argument("--collectstatic", action="store_true",
                        help="collect static files even when staticfiles/ is up to date")
    parser.add_argument("--keep", action="store_true", help="keep the database and the logs")
    parser.add_argument("--json", help="also write the results to this file")
    args = parser.parse_args(argv)
    if args.pis is None:
        args.pis = max(1, min(args.centers, args.users // 10))
    if not 0 < args.pis < args.users:
        parser.error("--pis must leave at least one investigator")
    return args


def build_stack(args, name, private_postgres=False):
    stack = Stack(name=name, database=args.database or f"registry_{name}",
                  private_postgres=private_postgres, gunicorn_workers=args.gunicorn_workers,
                  worker_concurrency=args.worker_concurrency)
    seed = stack.setup(centers=args.centers, patients_per_center=args.patients_per_center,
                       investigators=args.users - args.pis, pis=args.pis,
                       collectstatic=args.collectstatic)
    seed["patients_per_center"] = args.patients_per_center
    stack.start()
    return stack, seed


def main(argv=None):
    args = parse_args(argv)
    results = {"command": " ".join(["bench/load.py", *(argv or sys.argv[1:])]),
               "load_before": os.getloadavg()}
    stack = watcher = None
    try:
        stack, seed = build_stack(args, "load")
        watcher = SnapshotWatcher(stack, limit_seconds=args.duration + 900)
        monitor = MachineMonitor(stack, stack.database, {watcher.process.pid: "watcher"})
        monitor.run()
        log(f"starting {args.users - args.pis} investigators and {args.pis} PIs "
            f"({args.spawn_rate}/s)")
        base_counts = {scope: n for scope, (n, _snap) in db_counts(stack).items()}
        ramp_start = time.time()
        sim, env, runner = start_simulation(stack, seed, args)
        logged_in = wait_logged_in(sim, args.users, timeout=args.users / args.spawn_rate + 120)
        log(f"{logged_in}/{args.users} users logged in after {time.time() - ramp_start:.1f} s; "
            f"warm-up {args.warmup:.0f} s, then measuring {args.duration:.0f} s")
        gevent.sleep(args.warmup)
        t0 = time.time()
        gevent.sleep(args.duration)
        t1 = time.time()
        stop_simulation(sim, runner)
        log("simulation stopped; checking the database and the snapshots")
        waited, counts = wait_caught_up(stack, timeout=120)
        monitor.stop()
        gevent.sleep(0.5)
        watcher.stop()
        observations = watcher.observations()

        ramp = page_stats(sim.samples, ramp_start, t0)
        steady = page_stats(sim.samples, t0, t1)
        visits = check_visits(stack, sim, seed["visits"])
        lags, missing, final_lag = snapshot_lags(observations, sim.saves, base_counts)
        requests = sum(s["requests"] for s in steady.values())
        machine = monitor.summary(t0, t1)
        recomputes = sum(1 for o in observations if "scope" in o and t0 <= o["t"] <= t1)
        errors = sum(s["failures"] for s in steady.values()) + sum(s["failures"] for s in ramp.values())
        results.update({
            "users": args.users, "investigators": args.users - args.pis, "pis": args.pis,
            "centers": args.centers, "patients": seed["patients"], "seeded_visits": seed["visits"],
            "ramp_seconds": round(t0 - ramp_start, 1), "duration": round(t1 - t0, 1),
            "rps": round(requests / (t1 - t0), 1), "requests": requests, "errors": errors,
            "pages": steady, "ramp_pages": {k: v for k, v in ramp.items() if k.startswith("login") or k == "dashboard"},
            "visits": visits, "snapshots_caught_up": waited is not None,
            "final_counts": {k: list(v) for k, v in counts.items()},
            "lag_after_last_save_s": None if final_lag is None else round(final_lag, 2),
            "lag_per_save": lag_summary(lags, missing),
            "machine": machine,
            "snapshots_stored": recomputes,
            "web_cpu_ms_per_request": round(1000 * machine.get("stack_cpu_seconds_by_role", {}).get("web", 0)
                                            * (t1 - t0) / max(1e-9, machine.get("seconds", t1 - t0)) / max(1, requests), 1),
        })
        report(results)
        if args.json:
            Path(args.json).write_text(json.dumps(results, indent=2, default=str))
        return 0 if verdict(results)["all"] else 1
    finally:
        if watcher is not None:
            watcher.stop()
        if stack is not None:
            stack.teardown(keep=args.keep)


def verdict(results):
    pages_ok = all(s["p95_ms"] < P95_TARGET_MS for s in results["pages"].values())
    v = results["visits"]
    checks = {
        "zero errors": results["errors"] == 0,
        "no lost or duplicated visit": v["lost"] == 0 and v["duplicated"] == 0 and v["wrong_values"] == 0
        and v["db_visits"] == v["expected_db_visits"],
        f"p95 < {P95_TARGET_MS} ms on every page": pages_ok,
        f"snapshots caught up within {LAG_TARGET_S:.0f} s of the last save":
            results["lag_after_last_save_s"] is not None and results["lag_after_last_save_s"] <= LAG_TARGET_S,
    }
    return {**checks, "all": all(checks.values())}


def report(results):
    m = results.get("machine", {})
    print("\n" + "=" * 78)
    print(f"Load: {results['investigators']} investigators + {results['pis']} PIs, {results['centers']} centers, "
          f"{results['patients']} patients / {results['seeded_visits']} visits seeded")
    print(f"Machine: {m.get('nproc')} CPUs; load average (1 min) {m.get('load_1min_min')}–{m.get('load_1min_max')} "
          f"(mean {m.get('load_1min_mean')}); CPU busy {m.get('machine_cpu_busy_pct')}%, of which other "
          f"engineers' processes {m.get('others_cpu_pct')}%; stack by role (% of all CPUs): {m.get('stack_cpu_pct_by_role')}")
    print(f"Ramp-up (logins, then warm-up) {results['ramp_seconds']} s; measured {results['duration']} s: "
          f"{results['requests']} requests, {results['rps']} requests/s, {results['errors']} errors")
    print(f"Server CPU: web {results['web_cpu_ms_per_request']} CPU-ms per request; "
          f"{results['snapshots_stored']} snapshots stored in the window; CPU seconds by role "
          f"{m.get('stack_cpu_seconds_by_role')} over {m.get('seconds')} s")
    print_pages(results["pages"], "Pages (measured window):")
    print_pages(results["ramp_pages"], "Log-ins and first dashboard loads (ramp-up and warm-up):")
    v = results["visits"]
    print(f"\nVisits: {v['attempted']} attempted, {v['saved']} saved ({v['saved_after_retry']} after a retry), "
          f"not saved {v['not_saved']}; lost {v['lost']}, duplicated {v['duplicated']}, wrong values "
          f"{v['wrong_values']}, stored though reported failed {v['stored_though_reported_failed']}; "
          f"database {v['db_visits']} visits (expected {v['expected_db_visits']})")
    if v["errors"]:
        print(f"  first errors: {v['errors']}")
    lag = results["lag_per_save"]
    print(f"Snapshots: caught up: {results['snapshots_caught_up']}; last save -> every snapshot showing it: "
          f"{results['lag_after_last_save_s']} s; per save (center and pooled): {lag}")
    for check, ok in verdict(results).items():
        if check != "all":
            print(f"  [{'met' if ok else 'NOT MET'}] {check}")
    print("=" * 78)


if __name__ == "__main__":
    sys.exit(main())
