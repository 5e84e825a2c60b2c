"""Fault benchmark: the load simulation of bench/load.py while services fail under it.

    .venv/bin/python bench/faults.py [--users 20] [--redis-down 30] [--pg-down 10] \
        [--postgres private|shared] [--keep] [--json results.json]

Same stack as bench/load.py (gunicorn, a Celery worker and Celery beat, a private Redis as
the broker), with its database on a private PostgreSQL cluster by default (``initdb`` in a
temporary directory, its own port), so that stopping PostgreSQL touches nobody else's
databases; ``--postgres shared`` restarts the shared server at 127.0.0.1:5432 instead (once,
and it is started again in any case at the end). Investigators keep entering visits and PIs
keep polling their dashboards while, one after the other:

1. the Celery worker is killed with SIGKILL (with its pool processes) in the middle of a
   recompute (seen in pg_stat_activity: a worker connection that has read the cohort and not
   yet stored the snapshot), and started again after ``--worker-down`` seconds;
2. Redis (the broker) is stopped for ``--redis-down`` seconds (``shutdown nosave``: queued
   messages are lost) and started again;
3. PostgreSQL is stopped for ``--pg-down`` seconds and started again.

For each fault it prints the requests that succeeded and failed while it lasted, the saves
(and the outage pages that kept the entries, posted again by the simulated user), and how
long after the service came back every snapshot showed every visit saved before then (the
snapshots must catch up by themselves: Celery beat runs, with its ``requeue_pending_scopes``
sweep every 60 s). At the end it checks, as bench/load.py does, that every visit the
simulation was told was saved is in the database exactly once.
"""
import load  # noqa: I001  (first: locust patches the standard library with gevent)

import json
import re
import sys
import time
from pathlib import Path

import gevent

from _stack import log
from load import (
    MachineMonitor, SnapshotWatcher, build_stack, check_visits, db_counts, page_stats,
    parse_args, print_pages, start_simulation, stop_simulation, wait_caught_up,
    wait_logged_in,
)

#: Tables ``endpoints.selectors.read_cohort`` reads (the fingerprint check's queries COUNT them).
COHORT_TABLES = ("clinical_visit", "clinical_adverseevent", "clinical_treatmentepisode",
                 "clinical_dosechange", "clinical_priortreatment", "clinical_patient")


def fault_options(parser):
    group = parser.add_argument_group("faults")
    group.add_argument("--postgres", choices=("private", "shared"), default="private",
                       help="a private cluster (default) or the shared server at 127.0.0.1:5432")
    group.add_argument("--worker-down", type=float, default=10.0, help="seconds the killed worker stays down")
    group.add_argument("--redis-down", type=float, default=30.0, help="seconds Redis stays down")
    group.add_argument("--pg-down", type=float, default=10.0, help="seconds PostgreSQL stays down")
    group.add_argument("--baseline", type=float, default=20.0, help="seconds of normal load first")
    group.add_argument("--catch-up-timeout", type=float, default=420.0,
                       help="longest wait for the snapshots after each fault")


def add_arguments(argv):
    return parse_args(argv, description=__doc__, users=20, duration=0, extend=fault_options)


class FaultRun:
    def __init__(self, stack, sim, args):
        self.stack, self.sim, self.args = stack, sim, args
        self.faults = []
        self.conn = None
        self.recompute_state_at_back = []
        self.restarts = []  # (time, role, exit code): processes that died and were restarted

    def supervise(self):
        """As docker compose's restart policy: a worker or beat that exits is started again."""
        while True:
            try:
                for role, code in self.stack.supervise():
                    self.restarts.append((time.time(), role, code))
                    log(f"  the {role} exited (code {code}) and was started again (restart policy)")
            except Exception as error:  # noqa: BLE001 - keep supervising
                log(f"  supervisor: {error}")
            gevent.sleep(1)

    def worker_log_size(self):
        path = self.stack.workdir / "worker.log"
        return path.stat().st_size if path.exists() else 0

    def sweeps_since(self, offset):
        """Celery beat's requeue sweeps that queued something, from the worker log."""
        with open(self.stack.workdir / "worker.log", "rb") as f:
            f.seek(offset)
            text = f.read().decode(errors="replace")
        return [
            line.split("]", 1)[0].strip("[ ") + " -> " + line.rsplit(":", 1)[-1].strip()
            for line in text.splitlines()
            if "requeue_pending_scopes" in line and "succeeded" in line and line.rstrip().endswith("]")
            and not line.rstrip().endswith("[]")
        ]

    # Database helpers (the hub blocks for a few milliseconds per query) -------------------------

    def query(self, sql, params=()):
        for _ in range(2):
            try:
                if self.conn is None or self.conn.closed:
                    self.conn = self.stack.postgres.connect(self.stack.database, autocommit=True)
                return self.conn.execute(sql, params).fetchall()
            except Exception:  # noqa: BLE001 - reconnect once (after a restart)
                try:
                    self.conn and self.conn.close()
                except Exception:  # noqa: BLE001
                    pass
                self.conn = None
        return None

    def snapshot_state(self):
        rows = self.query(
            "SELECT scope, json_array_length(rows), visits, computed_at FROM endpoints_snapshot ORDER BY scope"
        ) or []
        return {scope: {"rows": n, "visits": visits, "computed_at": str(at)} for scope, n, visits, at in rows}

    def recompute_state(self):
        rows = self.query(
            "SELECT scope, pending_changes, queued_at, left(last_error, 120) FROM endpoints_recomputestate "
            "WHERE pending_changes > 0 OR last_error <> '' ORDER BY scope"
        ) or []
        return [{"scope": s, "pending": p, "queued_at": str(q) if q else None, "last_error": e}
                for s, p, q, e in rows]

    def wait_reflected(self, targets, timeout):
        """Seconds until every scope's snapshot counts at least ``targets[scope]`` visits."""
        started = time.monotonic()
        while time.monotonic() - started < timeout:
            rows = self.query("SELECT scope, visits FROM endpoints_snapshot")
            if rows is not None:
                snap = dict(rows)
                if all(snap.get(scope, -1) >= n for scope, n in targets.items()):
                    return time.monotonic() - started
            gevent.sleep(0.25)
        return None

    def find_recompute(self, timeout=90):
        """Wait for a worker connection reading a cohort (``read_cohort``: one read-only
        transaction, then the computation, then the snapshot is stored): (pid, scope, query)."""
        app = f"{self.stack.name}-worker"
        started = time.monotonic()
        while time.monotonic() - started < timeout:
            rows = self.query(
                "SELECT pid, query FROM pg_stat_activity WHERE application_name = %s "
                "AND state IN ('active', 'idle in transaction')", (app,)
            ) or []
            for pid, sql in rows:
                sql = sql or ""
                reading = "COUNT(" not in sql and (
                    any(f'FROM "{table}"' in sql for table in COHORT_TABLES)
                    or sql.startswith(("FETCH", "DECLARE", "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ"))
                )
                if reading:
                    match = re.search(r"'(ld\d+)'", sql)
                    return pid, match.group(1) if match else "?", sql[:90]
            gevent.sleep(0.02)
        return None

    # One fault ------------------------------------------------------------------------------

    def run_fault(self, title, inject, restore, down_seconds):
        log(f"fault: {title}")
        before = {"snapshots": self.snapshot_state()}
        offset = self.worker_log_size()
        t_fault = time.time()
        detail = inject() or {}
        after_kill = self.snapshot_state() if detail.get("check_snapshots") else None
        gevent.sleep(down_seconds)
        restore()
        t_back = time.time()
        log(f"  service back after {t_back - t_fault:.1f} s; waiting for the snapshots to catch up")
        targets = {scope: n for scope, (n, _snap) in db_counts(self.stack).items()}
        waited = self.wait_reflected(targets, self.args.catch_up_timeout)
        t_caught = time.time()
        fault = {
            "title": title, **{k: v for k, v in detail.items() if k != "check_snapshots"},
            "down_seconds": round(t_back - t_fault, 1),
            "caught_up_after_back_s": None if waited is None else round(waited, 1),
            "caught_up_after_fault_s": None if waited is None else round(t_caught - t_fault, 1),
            "t_fault": t_fault, "t_back": t_back, "t_caught": t_caught,
            "recompute_state_after_back": self.recompute_state_at_back,
            "recompute_state_caught_up": self.recompute_state(),
            "sweeps": self.sweeps_since(offset),
            "restarts": [f"{role} exited with code {code} {at - t_fault:.1f} s after the fault, restarted"
                         for at, role, code in self.restarts if t_fault <= at <= t_caught],
        }
        if after_kill is not None:
            whole = all(
                after_kill.get(scope, {}).get("rows", 0) > 0
                and after_kill[scope]["visits"] >= state["visits"]
                for scope, state in before["snapshots"].items()
            )
            fault["snapshots_whole_after_kill"] = whole
        self.faults.append(fault)
        log(f"  caught up {fault['caught_up_after_back_s']} s after the service came back")
        gevent.sleep(5)
        return fault

    # The three faults -----------------------------------------------------------------------------

    def kill_worker(self):
        found = self.find_recompute()
        if found is None:
            log("  no recompute seen within 90 s: killing the worker anyway")
            self.stack.kill_worker()
            return {"mid_recompute": False, "check_snapshots": True}
        pid, scope, sql = found
        self.stack.kill_worker()
        # The scope claimed by the killed task: changes pending, no task queued any more.
        claimed = [s["scope"] for s in self.recompute_state() if s["pending"] and not s["queued_at"]]
        log(f"  SIGKILLed the worker while its connection {pid} read a cohort ({sql}...); "
            f"claimed and not settled: {claimed}")
        return {"mid_recompute": True, "scope": scope if scope != "?" else claimed, "query": sql,
                "check_snapshots": True}

    def restart_worker(self):
        self.recompute_state_at_back = self.recompute_state()
        self.stack.start_worker()

    def stop_redis(self):
        self.stack.redis.stop()
        log(f"  Redis stopped (shutdown nosave) for {self.args.redis_down:.0f} s")
        return {}

    def start_redis(self):
        self.recompute_state_at_back = self.recompute_state()
        self.stack.redis.start()

    def stop_postgres(self):
        self.recompute_state_at_back = []
        self.stack.postgres.stop()
        log(f"  PostgreSQL stopped for {self.args.pg_down:.0f} s")
        return {}

    def start_postgres(self):
        self.stack.postgres.start()
        self.recompute_state_at_back = self.recompute_state()


def window_stats(sim, t0, t1):
    pages = page_stats(sim.samples, t0, t1)
    return {
        "requests_ok": sum(p["requests"] - p["failures"] for p in pages.values()),
        "requests_failed": sum(p["failures"] for p in pages.values()),
        "failed_by_page": {name: p["failure_statuses"] for name, p in pages.items() if p["failures"]},
        "pages": pages,
        "saves_answered_saved": sum(1 for _t, name, _ms, ok, _st in sim.samples if name == "visit save" and ok and t0 <= _t <= t1),
        "outage_pages": sum(1 for _t, name, _ms, ok, st in sim.samples if st == 503 and t0 <= _t <= t1),
    }


def main(argv=None):
    args = add_arguments(sys.argv[1:] if argv is None else argv)
    results = {"command": " ".join(["bench/faults.py", *(sys.argv[1:] if argv is None else argv)])}
    stack = watcher = run = None
    try:
        stack, seed = build_stack(args, "faults", private_postgres=args.postgres == "private")
        watcher = SnapshotWatcher(stack, limit_seconds=3600)
        monitor = MachineMonitor(stack, stack.database, {watcher.process.pid: "watcher"})
        monitor.run()
        ramp_start = time.time()
        sim, env, runner = start_simulation(stack, seed, args)
        logged_in = wait_logged_in(sim, args.users, timeout=args.users / args.spawn_rate + 120)
        log(f"{logged_in}/{args.users} users logged in after {time.time() - ramp_start:.1f} s; "
            f"baseline {args.baseline:.0f} s")
        t_start = time.time()
        gevent.sleep(args.baseline)
        run = FaultRun(stack, sim, args)
        supervisor = gevent.spawn(run.supervise)
        run.run_fault("Celery worker SIGKILLed in the middle of a recompute, restarted",
                      run.kill_worker, run.restart_worker, args.worker_down)
        run.run_fault(f"Redis stopped for {args.redis_down:.0f} s (shutdown nosave), started again",
                      run.stop_redis, run.start_redis, args.redis_down)
        run.run_fault(f"PostgreSQL ({args.postgres}) stopped for {args.pg_down:.0f} s, started again",
                      run.stop_postgres, run.start_postgres, args.pg_down)
        gevent.sleep(10)
        t_end = time.time()
        stop_simulation(sim, runner, timeout=200)
        supervisor.kill()
        log("simulation stopped; checking the database and the snapshots")
        waited, counts = wait_caught_up(stack, timeout=args.catch_up_timeout)
        monitor.stop()
        watcher.stop()
        for fault in run.faults:
            fault["during"] = window_stats(sim, fault["t_fault"], fault["t_back"])
            fault["until_caught_up"] = window_stats(sim, fault["t_back"], fault["t_caught"])
        results.update({
            "users": args.users, "investigators": args.users - args.pis, "pis": args.pis,
            "postgres": args.postgres, "faults": run.faults,
            "overall": window_stats(sim, t_start, t_end),
            "visits": check_visits(stack, sim, seed["visits"]),
            "final_caught_up": waited is not None, "final_counts": {k: list(v) for k, v in counts.items()},
            "machine": monitor.summary(t_start, t_end),
        })
        report(results)
        if args.json:
            Path(args.json).write_text(json.dumps(results, indent=2, default=str))
        return 0
    finally:
        if watcher is not None:
            watcher.stop()
        if stack is not None:
            # Whatever happened: the servers this run stopped are running again.
            if not stack.postgres.ready():
                log("starting PostgreSQL again")
                stack.postgres.start()
            stack.teardown(keep=args.keep)


def report(results):
    m = results["machine"]
    print("\n" + "=" * 78)
    print(f"Faults: {results['investigators']} investigators + {results['pis']} PIs; PostgreSQL "
          f"{results['postgres']}; load average (1 min) {m.get('load_1min_min')}–{m.get('load_1min_max')}, "
          f"CPU busy {m.get('machine_cpu_busy_pct')}% (others {m.get('others_cpu_pct')}%)")
    for number, fault in enumerate(results["faults"], start=1):
        during, after = fault["during"], fault["until_caught_up"]
        print(f"\n{number}. {fault['title']}")
        if "mid_recompute" in fault:
            print(f"   killed mid-recompute: {fault['mid_recompute']} (scope {fault.get('scope')}); "
                  f"snapshots whole after the kill: {fault.get('snapshots_whole_after_kill')}")
        print(f"   during the fault ({fault['down_seconds']} s): requests ok {during['requests_ok']}, "
              f"failed {during['requests_failed']} {during['failed_by_page'] or ''}; visit saves answered "
              f"'saved' {during['saves_answered_saved']}, outage pages {during['outage_pages']}")
        print(f"   until caught up: requests ok {after['requests_ok']}, failed {after['requests_failed']} "
              f"{after['failed_by_page'] or ''}")
        save = during["pages"].get("visit save")
        if save:
            print(f"   visit save during the fault: p50 {save['p50_ms']} ms, p95 {save['p95_ms']} ms, max {save['max_ms']} ms")
        print(f"   snapshots showed every visit saved before the service came back "
              f"{fault['caught_up_after_back_s']} s after it did ({fault['caught_up_after_fault_s']} s after the fault)")
        print(f"   recompute state when back: {fault['recompute_state_after_back']}")
        if fault["restarts"]:
            print(f"   processes that died and were restarted: {fault['restarts']}")
        if fault["sweeps"]:
            print(f"   beat sweeps that requeued scopes: {fault['sweeps']}")
    v = results["visits"]
    print(f"\nVisits over the run: {v['attempted']} attempted, {v['saved']} saved ({v['saved_after_retry']} "
          f"after posting the outage page again), not saved {v['not_saved']}; lost {v['lost']}, duplicated "
          f"{v['duplicated']}, wrong values {v['wrong_values']}, stored though reported failed "
          f"{v['stored_though_reported_failed']}; outage pages {v['outage_pages']} "
          f"(without the entries: {v['outage_pages_without_data']}); database {v['db_visits']} "
          f"(expected {v['expected_db_visits']})")
    if v["errors"]:
        print(f"  first errors: {v['errors']}")
    print(f"Final: every snapshot equals the database: {results['final_caught_up']}")
    print_pages(results["overall"]["pages"], "Pages over the whole fault run:")
    print("=" * 78)


if __name__ == "__main__":
    sys.exit(main())
