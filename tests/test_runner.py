import multiprocessing
import os
import time

import pytest

from fmtbench import env, gpus, hardware, isolation, results, runner
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

    from fmtbench import memory
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


def test_repeats_are_interleaved_rounds_not_back_to_back():
    configs = [(loader, batch) for batch in (32, 40, 48, 56, 64) for loader in ("real", "dummy", "gpu")]
    order = runner.schedule(configs, 3)
    assert [r for r, _ in order] == [0] * 15 + [1] * 15 + [2] * 15
    for config in configs:
        positions = [i for i, (_, c) in enumerate(order) if c == config]
        assert len(positions) == 3 and all(b - a >= 10 for a, b in zip(positions, positions[1:]))
    assert all(a != b for (_, a), (_, b) in zip(order, order[1:]))


def test_usable_cores_follow_affinity_not_the_machine():
    """os.cpu_count() saw every core of the node under taskset, a cgroup or SLURM; CPU rows used them all."""
    def child(queue):
        os.sched_setaffinity(0, {0})
        queue.put((os.cpu_count(), hardware.usable_cores(), env.capture("cpu")["cpu_affinity"]))
    queue = multiprocessing.get_context("fork").Queue()
    process = multiprocessing.get_context("fork").Process(target=child, args=(queue,))
    process.start()
    machine, usable, recorded = queue.get(timeout=30)
    process.join()
    assert usable == recorded == [0]
    assert machine == os.cpu_count()


def test_core_plan_keeps_cpu_rows_exports_and_cuda_jobs_apart():
    plan = hardware.core_plan(True, None, list(range(16)))
    assert not set(plan["cpu"]) & set(plan["cuda"]) and not set(plan["export"]) & set(plan["cuda"])
    assert not set(plan["cpu"]) & set(plan["export"])
    assert sorted(plan["cpu"] + plan["cuda"] + plan["export"]) == list(range(16))
    assert hardware.core_plan(False, None, [0, 1]) == {"cpu": [0, 1], "cuda": [0, 1], "export": [0, 1]}
    assert hardware.core_plan(True, 4, list(range(16)))["cpu"] == [10, 11, 12, 13]


class FakeNvml:
    def __init__(self):
        self.used, self.energy, self.reasons = 1000, 5_000, 0

    def memory_used(self):
        return self.used

    def energy_mj(self):
        return self.energy

    def sample(self):
        return {"sm_clock_mhz": 1980, "power_w": 300.0, "reasons": self.reasons}

    def power_limit_w(self):
        return 700.0


def test_device_monitor_measures_memory_energy_and_throttling_outside_the_child(monkeypatch):
    fake = FakeNvml()
    monkeypatch.setattr(gpus.Nvml, "open", classmethod(lambda cls, uuid=None, pci_bus_id=None: fake))
    monitor = gpus.DeviceMonitor(interval=0.001, clock_every=1)
    assert monitor.on_mark("baseline", {"uuid": "x"}) == {"device_memory": True}
    fake.used = 1000 + 300 * 1024 * 1024
    monitor.on_mark("loaded", {})
    monitor.on_mark("timing_start", {})
    fake.used = 1000 + 500 * 1024 * 1024
    fake.reasons = 0x4  # software power cap
    time.sleep(0.05)
    fake.used, fake.energy = 1000 + 400 * 1024 * 1024, 65_000
    readings = monitor.on_mark("timing_end", {})
    assert readings["memory"]["allocated_mb"] == pytest.approx(500, abs=1)
    assert readings["memory"]["load_mb"] == pytest.approx(300, abs=1)
    assert readings["gpu"]["energy_j"] == pytest.approx(60.0)
    assert readings["gpu"]["throttled"] and "sw_power_cap" in readings["gpu"]["clock_event_reasons"]


def test_without_nvml_the_child_tracks_device_memory_itself(monkeypatch):
    monkeypatch.setattr(gpus.Nvml, "open", classmethod(lambda cls, uuid=None, pci_bus_id=None: None))
    assert gpus.DeviceMonitor().on_mark("baseline", {}) == {"device_memory": False}


def test_unavailable_record_validates_against_the_schema():
    config = results.Config("onnx", "fp16", "cuda", "real", 224, 64, "host")
    record = results.record(config, "unavailable", "no CUDA device", environment=env.capture("cuda"))
    results.validate(record)
    with pytest.raises(ValueError):
        results.record(config, "skipped")


def test_end_to_end_expectation_depends_on_whether_decoding_overlaps_the_model():
    loader = {"end_to_end_fps": 90.0, "decode_capacity_fps": 100.0, "data_wait_ms": None, "producer": "p",
              "concurrent": True}
    overlapped = results.throughput(4, 4 / 200 * 1e3, [{"loader": loader}])  # model 200 img/s
    assert overlapped["expected_fps"] == pytest.approx(100) and not overlapped["stalled"]
    serial = results.throughput(4, 4 / 200 * 1e3, [{"loader": {**loader, "concurrent": False,
                                                               "end_to_end_fps": 62.0}}])
    assert serial["expected_fps"] == pytest.approx(1 / (1 / 200 + 1 / 100)) and not serial["stalled"]
    stalled = results.throughput(4, 4 / 200 * 1e3, [{"loader": {**loader, "end_to_end_fps": 30.0}}])
    assert stalled["stalled"] and stalled["pipeline_efficiency"] == pytest.approx(0.3)
