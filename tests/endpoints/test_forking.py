"""Splitting work between forked processes (endpoints.compute.forking)."""
import os

import pytest

from endpoints.compute.forking import balanced_parts, forked_map

needs_fork = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")


def test_parts_are_balanced_by_size_largest_first():
    sizes = {"a": 10, "b": 7, "c": 5, "d": 3, "e": 0}
    assert balanced_parts(sizes, 2) == [["a", "d"], ["b", "c", "e"]]
    assert balanced_parts(sizes, 1) == [["a", "b", "c", "d", "e"]]


def test_no_empty_part():
    assert balanced_parts({"a": 4}, 3) == [["a"]]
    assert balanced_parts({}, 2) == []


@needs_fork
@pytest.mark.parametrize("first_here", [True, False])
def test_results_come_back_in_order_from_other_processes(first_here):
    pids = forked_map(lambda part: (part, os.getpid()), [1, 2, 3], first_here=first_here)
    assert [part for part, _pid in pids] == [1, 2, 3]
    others = [pid for _part, pid in pids[1:]]
    assert os.getpid() not in others and len(set(others)) == 2
    assert (pids[0][1] == os.getpid()) is first_here


@needs_fork
def test_a_failing_part_raises_here_with_its_traceback():
    def work(part):
        if part == 2:
            raise ValueError("part two is broken")
        return part

    with pytest.raises(RuntimeError, match="part two is broken"):
        forked_map(work, [1, 2, 3])


@needs_fork
def test_a_result_that_cannot_be_sent_back_is_reported():
    with pytest.raises(RuntimeError, match="pickle"):
        forked_map(lambda part: (lambda: part), [1, 2])
