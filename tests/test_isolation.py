import os
import time

import pytest

from fmtbench import isolation
from fmtbench.backends.base import Unavailable


def returns_value(x):
    return {"double": 2 * x}


def crashes():
    isolation.mark("loaded")
    os._exit(3)


def raises_unavailable():
    raise Unavailable("no CUDA here")


def raises_oom():
    raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")


def raises_other():
    raise ValueError("bad thing")


def hangs():
    isolation.mark("timing_start")
    time.sleep(60)


def marks_and_reads_replies():
    first = isolation.mark("baseline", uuid="GPU-1")
    second = isolation.mark("timing_end")
    return first, second


def allocates_in_child():
    import numpy as np

    from fmtbench.measure import memory
    tracker = memory.RssTracker().start()
    block = np.ones(48 * 1024 * 1024 // 8)  # above glibc's largest mmap threshold (32 MiB): fresh pages
    return {"allocated_mb": tracker.stop()["allocated_mb"], "size": block.size}


def test_child_value_comes_back():
    assert isolation.run_forked(returns_value, 21, timeout=60).value == {"double": 42}


@pytest.mark.parametrize("function, status, text", [
    (crashes, "failed", "exit code 3) during stage 'loaded'"),
    (raises_unavailable, "unavailable", "no CUDA here"),
    (raises_oom, "oom", "out of memory"),
    (raises_other, "failed", "ValueError: bad thing"),
])
def test_child_failures_become_data(function, status, text):
    outcome = isolation.run_forked(function, timeout=60)
    assert outcome.status == status
    assert text in outcome.reason


def test_hanging_child_is_killed_and_reported_with_its_stage():
    start = time.perf_counter()
    outcome = isolation.run_forked(hangs, timeout=1)
    assert outcome.status == "failed" and "timed out" in outcome.reason and "timing_start" in outcome.reason
    assert time.perf_counter() - start < 10


def test_marks_reach_the_parent_which_answers_and_times_them():
    seen = []

    def on_mark(name, data):
        seen.append((name, data))
        return {"answer": name}
    outcome = isolation.run_forked(marks_and_reads_replies, timeout=60, on_mark=on_mark)
    assert outcome.value == ({"answer": "baseline"}, {"answer": "timing_end"})
    assert seen == [("baseline", {"uuid": "GPU-1"}), ("timing_end", {})]
    assert 0 < outcome.stages["baseline"] <= outcome.stages["timing_end"] <= outcome.stages["exited"]


def test_each_configuration_measures_its_memory_in_a_fresh_process():
    first = isolation.run_forked(allocates_in_child, timeout=60).value["allocated_mb"]
    second = isolation.run_forked(allocates_in_child, timeout=60).value["allocated_mb"]
    # the second does not profit from the first's pages
    assert 44 <= first <= 60 and 44 <= second <= 60, (first, second)
