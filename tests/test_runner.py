import os
import time

import pytest

from fmtbench import env, results, runner
from fmtbench.backends._torchutil import Unavailable


def returns_value(x):
    return {"double": 2 * x}


def crashes():
    os._exit(3)


def raises_unavailable():
    raise Unavailable("no CUDA here")


def raises_oom():
    raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")


def raises_other():
    raise ValueError("bad thing")


def hangs():
    time.sleep(60)


def allocates_in_child():
    import numpy as np
    from fmtbench import memory
    tracker = memory.RssTracker().start()
    block = np.ones(48 * 1024 * 1024 // 8)  # above glibc's largest mmap threshold (32 MiB): fresh pages
    return {"allocated_mb": tracker.stop()["allocated_mb"], "size": block.size}


def test_child_value_comes_back():
    assert runner.run_isolated(returns_value, 21).value == {"double": 42}


@pytest.mark.parametrize("function, status, text", [
    (crashes, "failed", "exit code 3"),
    (raises_unavailable, "unavailable", "no CUDA here"),
    (raises_oom, "oom", "out of memory"),
    (raises_other, "failed", "ValueError: bad thing"),
])
def test_child_failures_become_data(function, status, text):
    outcome = runner.run_isolated(function)
    assert outcome.status == status
    assert text in outcome.reason


def test_hanging_child_is_killed_and_reported():
    start = time.perf_counter()
    outcome = runner.run_isolated(hangs, timeout=1)
    assert outcome.status == "failed" and "timed out" in outcome.reason
    assert time.perf_counter() - start < 10


def test_each_configuration_measures_its_memory_in_a_fresh_process():
    first = runner.run_isolated(allocates_in_child).value["allocated_mb"]
    second = runner.run_isolated(allocates_in_child).value["allocated_mb"]
    assert 44 <= first <= 60 and 44 <= second <= 60, (first, second)  # the second does not profit from the first's pages


def test_unavailable_record_validates_against_the_schema():
    config = results.Config("onnx", "fp16", "cuda", "real", 224, 64, "host")
    record = results.record(config, "unavailable", "no CUDA device", environment=env.capture("cuda"))
    results.validate(record)
    with pytest.raises(ValueError):
        results.record(config, "skipped")
