"""Gunicorn settings of the web app: the one place for them.

Used by the production image (Dockerfile, docker-compose.yml) and by the load and fault
benchmarks (bench/_stack.py), which only override the address and the access log.
"""
import os

bind = "0.0.0.0:8000"

# Sync workers, (2 × CPUs) + 1 (gunicorn's rule of thumb): a request is mostly Python (10–30 ms
# of CPU) plus short database waits, so a core can serve a second worker while the first
# waits, and with more workers than cores a 5 ms dashboard poll is scheduled beside the heavy
# pages by the kernel instead of queueing behind them (three workers on two cores left polls
# waiting whenever three pages were in flight). Threads (gthread) would share one GIL per
# process for the same effect. WEB_CONCURRENCY overrides the number (e.g. where the container
# sees more CPUs than it may use).
workers = int(os.environ.get("WEB_CONCURRENCY") or 2 * len(os.sched_getaffinity(0)) + 1)

accesslog = "-"
