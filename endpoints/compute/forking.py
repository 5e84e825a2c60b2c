"""Run a function over parts of a job in forked processes (POSIX), results back in order.

The nightly recompute is CPU-bound Python: threads would share one core through the GIL, so
the work is split between processes. Forked children see the parent's memory without
copying it, send their result back pickled through a pipe, and leave with ``os._exit``: no
atexit handler runs and no inherited resource (a database connection, a broker socket) is
closed or flushed from the child. A caller running other threads that hold locks should
not fork (see :func:`can_fork`).
"""
from __future__ import annotations

import os
import pickle
import traceback
from collections.abc import Callable, Sequence
from typing import Any

#: Below this many patients a second process costs more than it saves (the fact pass, the
#: nightly run's parts).
PARALLEL_MIN_PATIENTS = 20_000


def can_fork() -> bool:
    return hasattr(os, "fork")


def worker_count(limit: int = 2) -> int:
    """Processes worth starting: one per CPU, at most ``limit``."""
    return max(1, min(limit, os.cpu_count() or 1))


def balanced_parts(sizes: dict, count: int) -> list[list]:
    """The keys of ``sizes`` (key -> amount of work) in at most ``count`` parts of about equal
    total size, largest first into the lightest part; empty parts left out."""
    parts: list[list] = [[] for _ in range(max(1, count))]
    totals = [0] * len(parts)
    for key in sorted(sizes, key=lambda key: (-sizes[key], key)):
        lightest = totals.index(min(totals))
        parts[lightest].append(key)
        totals[lightest] += sizes[key]
    return [part for part in parts if part]


def forked_map(function: Callable[[Any], Any], parts: Sequence, *, first_here: bool = True) -> list:
    """``[function(part) for part in parts]``, each part in a process of its own.

    ``first_here``: run the first part in this process while the others run (no process
    sits idle); False when this process must stay free meanwhile (it holds a transaction
    the children depend on, say). A part that cannot be forked runs here. Any part's
    exception is raised here as a RuntimeError with the child's traceback, once every child
    has been waited for (no zombie is left).
    """
    children: list[tuple[int, int] | None] = []
    results: list[Any] = [None] * len(parts)
    local = [0] if first_here and parts else []
    for index, part in enumerate(parts):
        if index in local:
            children.append(None)
            continue
        read_end, write_end = os.pipe()
        try:
            pid = os.fork()
        except OSError:
            os.close(read_end)
            os.close(write_end)
            local.append(index)
            children.append(None)
            continue
        if pid == 0:  # pragma: no cover - runs in the child
            status = 1
            try:
                os.close(read_end)
                try:
                    payload = pickle.dumps(("ok", function(part)), protocol=pickle.HIGHEST_PROTOCOL)
                except BaseException:  # noqa: BLE001 - the work, or pickling its result: reported here
                    payload = pickle.dumps(("error", traceback.format_exc()))
                with os.fdopen(write_end, "wb") as pipe:
                    pipe.write(payload)
                status = 0
            finally:
                os._exit(status)
        os.close(write_end)
        children.append((pid, read_end))

    failure = None
    try:
        for index in local:
            results[index] = function(parts[index])
    finally:
        for index, child in enumerate(children):
            if child is None:
                continue
            pid, read_end = child
            try:
                with os.fdopen(read_end, "rb") as pipe:
                    status, payload = pickle.load(pipe)
            except Exception as error:  # noqa: BLE001 - the child died before it could report
                status, payload = "error", repr(error)
            os.waitpid(pid, 0)
            if status == "ok":
                results[index] = payload
            else:
                failure = failure or payload
    if failure:
        raise RuntimeError(f"a worker process failed:\n{failure}")
    return results
