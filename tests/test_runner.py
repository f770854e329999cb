import multiprocessing
import os
import time

import pytest

from fmtbench import env, gpus, hardware, isolation, results, runner, stats
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


def test_each_process_takes_the_configurations_in_another_order_loaders_of_a_batch_together():
    configs = [(loader, batch) for batch in (32, 40, 48, 56, 64) for loader in ("real", "dummy", "gpu")]
    orders = [runner.order(configs, index, 2) for index in range(2)]
    for ordered in orders:
        assert sorted(ordered) == sorted(configs)
        batches = [batch for _, batch in ordered]
        assert all(batches[i] == batches[i + 1] for i in range(0, 15, 3) for _ in [0]), "a batch's loaders together"
    assert [b for _, b in orders[0]][::3] == [32, 40, 48, 56, 64]
    assert [b for _, b in orders[1]][::3] == [48, 56, 64, 32, 40]
    assert [loader for loader, _ in orders[1][:3]] == ["dummy", "gpu", "real"]
    for config in configs:  # no configuration at the same place in both processes
        assert orders[0].index(config) != orders[1].index(config)
    # every loader first at every batch size within as many processes as there are loaders (torch.compile's
    # graph kept for the next loader at a batch: only the first one's memory figure is its own)
    firsts = {ordered[i] for ordered in (runner.order(configs, index, 3) for index in range(3))
              for i in range(0, 15, 3)}
    assert firsts == set(configs)


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


def test_device_monitor_measures_each_configuration_outside_the_child(monkeypatch):
    fake = FakeNvml()
    mb = 1024 * 1024
    monkeypatch.setattr(gpus.Nvml, "open", classmethod(lambda cls, uuid=None, pci_bus_id=None: fake))
    monitor = gpus.DeviceMonitor(interval=0.001, clock_every=1)
    assert monitor.on_mark("baseline", {"uuid": "x"}) == {"device_memory": True}
    fake.used = 1000 + 300 * mb           # the model: 300 MB
    monitor.on_mark("loaded", {})
    fake.used = 1000 + 310 * mb           # first configuration: its input batch (10 MB), then its baseline
    monitor.on_mark("config_start", {})
    monitor.on_mark("timing_start", {})
    fake.used = 1000 + 510 * mb
    fake.reasons = 0x4  # software power cap
    time.sleep(0.05)
    monitor.on_mark("energy_start", {})
    fake.used, fake.energy = 1000 + 400 * mb, 65_000
    monitor.on_mark("energy_end", {})
    readings = monitor.on_mark("config_end", {})
    assert readings["memory"]["allocated_mb"] == pytest.approx(300 + 200, abs=1)   # load + its own peak growth
    assert readings["memory"]["load_mb"] == pytest.approx(300, abs=1)
    assert readings["gpu"]["energy"]["joules"] == pytest.approx(60.0)
    assert readings["gpu"]["throttled"] and "sw_power_cap" in readings["gpu"]["clock_event_reasons"]
    # the next configuration starts from what is left after the first released its memory
    fake.used, fake.reasons = 1000 + 320 * mb, 0
    monitor.on_mark("config_start", {})
    fake.used = 1000 + 420 * mb
    time.sleep(0.02)
    second = monitor.on_mark("config_end", {})
    assert second["memory"]["allocated_mb"] == pytest.approx(300 + 100, abs=1)
    assert not second["gpu"]["throttled"] and second["gpu"]["energy"] is None
    monitor.on_mark("closed", {})
    assert monitor._thread is None


def test_without_nvml_the_child_tracks_device_memory_itself(monkeypatch):
    monkeypatch.setattr(gpus.Nvml, "open", classmethod(lambda cls, uuid=None, pci_bus_id=None: None))
    assert gpus.DeviceMonitor().on_mark("baseline", {}) == {"device_memory": False}


def test_unavailable_record_validates_against_the_schema():
    config = results.Config("onnx", "fp16", "cuda", "real", 224, 64, "host")
    record = results.record(config, "unavailable", "no CUDA device", environment=env.capture("cuda"))
    results.validate(record)
    with pytest.raises(ValueError):
        results.record(config, "skipped")


def _timing(median_ms, throughput=None, kind="latency"):
    samples = [median_ms] * 5
    process = stats.ProcessTiming(kind=kind, samples_ms=samples, summary=stats.Summary.of(samples), warmup_iters=1,
                                  warmup_seconds=0, timed_seconds=0.1, stop="min",
                                  throughput=stats.Throughput.of([throughput], 1, 4) if throughput else None)
    return stats.Timing.of([process], "c", 0.1, 0.05)


def test_end_to_end_expectation_depends_on_whether_decoding_overlaps_the_model():
    loader = {"end_to_end_fps": 90.0, "decode_capacity_fps": 100.0, "data_wait_ms": None, "producer": "p",
              "concurrent": True}
    under_load = _timing(4 / 200 * 1e3, kind="under_load")  # the model under load: 200 img/s
    overlapped = results.throughput(4, under_load, [{"loader": loader}])
    assert overlapped["expected_fps"] == pytest.approx(100) and not overlapped["stalled"]
    assert overlapped["basis"] == "under_load" and overlapped["model_fps"] == pytest.approx(200)
    serial = results.throughput(4, under_load, [{"loader": {**loader, "concurrent": False, "end_to_end_fps": 62.0}}])
    assert serial["expected_fps"] == pytest.approx(1 / (1 / 200 + 1 / 100)) and not serial["stalled"]
    stalled = results.throughput(4, under_load, [{"loader": {**loader, "end_to_end_fps": 30.0}}])
    assert stalled["stalled"] and stalled["pipeline_efficiency"] == pytest.approx(0.3)


def test_model_throughput_of_a_dummy_row_is_its_back_to_back_rate_not_batch_over_latency():
    row = results.throughput(4, _timing(4 / 200 * 1e3, throughput=4 / 230), [{"loader": None}])
    assert row["model_fps"] == pytest.approx(230) and row["basis"] == "back_to_back"
    assert row["latency_fps"] == pytest.approx(200) and row["end_to_end_fps"] is None


def _cpu_job(weights, tmp_path, batches=(2, 8), loaders=("dummy",), processes=1, max_processes=1, **overrides):
    from fmtbench import timing
    settings = timing.Settings(processes=processes, max_processes=max_processes, warmup_iters=2, warmup_seconds=0,
                               min_iters=5, min_seconds=0, max_seconds=1, target_ci=0, throughput_seconds=0,
                               energy_seconds=0)
    outputs = {(loader, batch): str(tmp_path / f"{loader}-bs{batch}.json") for batch in batches for loader in loaders}
    return runner.JobRequest(format="torch", backend="torch", device="cpu", precision="fp32", image_size=32,
                             host="test", batch_sizes=tuple(batches), loaders=tuple(loaders), weights=str(weights),
                             manifest=None, reference=None, artifact=None, provenance=None, measurement=settings,
                             noisy_iqr_ratio=0.1, unstable_spread=0.05, loader_workers=0, threads=1,
                             options={"fp32_math": "strict", "cuda_graph": False, "autocast": False},
                             outputs=outputs, **overrides)


def test_one_process_measures_every_configuration_and_each_memory_figure_is_its_own(weights, tmp_path):
    """Batch 2 measured after batch 64 in the same process reads what a fresh process reads for it, within the
    issue's bound (5 % or 20 MB): the previous configuration's buffers are released and it starts from its own
    baseline; the model's load and the library handles count alike in both. Measured here (64², 1 thread):
    batch 2 63.9-69.4 MB grouped in either order, 68.8-69.0 fresh (oneDNN keeps a scratch buffer grown by a
    larger batch: up to 5 MB of it can be shared); batch 64 94-120 grouped, 100-129 fresh (its RSS varies between
    processes by more than the bound, so it is not compared). The jobs run in a fresh interpreter, as benchmark
    jobs do: a process that ran torch ops before forking (this pytest process) leaves its children lazy state that
    lands in their first configuration."""
    from dataclasses import replace
    jobs = [replace(_cpu_job(weights, tmp_path / "g", (2, 64), processes=2), image_size=64)]
    jobs += [replace(_cpu_job(weights, tmp_path / f"f{b}", (b,)), image_size=64) for b in (2, 64)]
    outcome = isolation.run_interpreter("helpers_isolated:memory_of_jobs", jobs,
                                        env={"PYTHONPATH": os.path.dirname(__file__)})
    assert outcome.status == "ok", outcome.reason
    grouped, fresh_small, fresh_large = outcome.value
    assert set(grouped[2]) == {1, 2, "load"}, "process 2 takes batch 64 first, then batch 2"
    alone, large_alone = fresh_small[2][1], fresh_large[64][1]
    for figure in (grouped[2][1], grouped[2][2]):
        assert figure == pytest.approx(alone, abs=max(20.0, 0.05 * alone)), (grouped, alone)
    # batch 64's own RSS varies between processes by more than the bound (oneDNN's scratch buffers: 100-129 MB
    # fresh in CI), so it is held to being a larger batch's figure, not to one fresh reading
    assert large_alone > alone + 20
    after_large = grouped[2][2]
    assert after_large < grouped[64][1] - 20, "not the larger batch's peak: its own baseline"
    assert min(grouped[64][1], grouped[64][2]) > alone + 20, "a larger batch needs more"
    assert grouped[2]["load"] > 30, "the fp32 weights (45 MB) are in every configuration's figure"


def test_a_row_records_its_settings_and_back_to_back_rate(weights, tmp_path):
    row = runner.run_job(_cpu_job(weights, tmp_path, (2,)))[0]
    assert row["measurement"]["processes"] == 1 and row["timing"]["throughput_fps"] > 0
    assert row["processes"][0]["configurations"] == 1 and row["timing"]["kind"] == "latency"


def _fake_config(job, session, planned, accounting, feeds=None):
    """In the child: a measurement whose median depends on how often this configuration was measured before."""
    import json
    import os

    from fmtbench import stats
    counts_path = os.environ["FAKE_COUNTS"]
    counts = json.loads(open(counts_path).read()) if os.path.exists(counts_path) else {}
    key = f"{planned.loader}-{planned.batch}"
    counts[key] = counts.get(key, 0) + 1
    open(counts_path, "w").write(json.dumps(counts))
    isolation.mark("config_start", loader=planned.loader, batch=planned.batch)
    if planned.batch == 4 and counts[key] == 1 and os.environ.get("FAKE_CRASH"):
        os._exit(9)  # dies while measuring this one
    median = 1.0 if planned.batch != 8 else (1.0, 1.5, 1.2, 0.9, 1.1)[counts[key] - 1]
    samples = [median] * 5
    process = stats.ProcessTiming(kind="latency", samples_ms=samples, summary=stats.Summary.of(samples),
                                  warmup_iters=1, warmup_seconds=0.0, timed_seconds=0.01, stop="min",
                                  throughput=stats.Throughput.of([median / 1e3], 1, planned.batch))
    memory = {"method": "fake", "baseline_mb": 1.0, "peak_mb": 2.0, "allocated_mb": 1.0}
    return {"status": "ok", "timing": process, "clock": "fake", "first_run_ms": 1.0, "memory": memory, "gpu": None,
            "loader": None, "accuracy": None}


def test_rows_whose_processes_disagree_get_more_processes_up_to_the_maximum(weights, tmp_path, monkeypatch):
    monkeypatch.setenv("FAKE_COUNTS", str(tmp_path / "counts.json"))
    monkeypatch.setattr(runner, "_measure_config", _fake_config)
    rows = {r["config"]["batch_size"]: r for r in runner.run_job(_cpu_job(weights, tmp_path, (2, 8), processes=2,
                                                                          max_processes=5))}
    assert len(rows[2]["processes"]) == 2 and not rows[2]["timing"]["unstable"]
    assert len(rows[8]["processes"]) == 5 and rows[8]["timing"]["unstable"]
    assert rows[8]["timing"]["median"] == pytest.approx(1.1)
    assert [p["configurations"] for p in rows[8]["processes"]] == [2, 2, 1, 1, 1], "extra processes: that row only"


def test_a_process_that_dies_loses_only_the_configuration_it_was_measuring(weights, tmp_path, monkeypatch):
    monkeypatch.setenv("FAKE_COUNTS", str(tmp_path / "counts.json"))
    monkeypatch.setenv("FAKE_CRASH", "1")
    monkeypatch.setattr(runner, "_measure_config", _fake_config)
    rows = {r["config"]["batch_size"]: r for r in runner.run_job(_cpu_job(weights, tmp_path, (2, 4, 6)))}
    assert rows[4]["status"] == "failed", rows[4]["reason"]
    assert "exit code 9" in rows[4]["reason"] and "measuring process 1" in rows[4]["reason"]
    assert rows[2]["status"] == rows[6]["status"] == "ok"
    assert rows[6]["processes"][0]["process"] == 2, "the rest of the group went to the next process"


def test_a_damaged_export_is_set_aside_and_no_row_is_written(weights, tmp_path):
    """The benchmark hashes a file export before measuring: bytes changed after the export stop the job before it
    writes a row, and the export is set aside for the next plain run to rebuild."""
    from dataclasses import replace

    from fmtbench import integrity
    from fmtbench.atomic import sha256_artifact, write_json
    artifact = tmp_path / "model.onnx"
    artifact.write_bytes(b"exported bytes")
    provenance = tmp_path / "model.onnx.provenance.json"
    write_json(provenance, {"status": "ok", "sha256": sha256_artifact(str(artifact)), "reason": None})
    artifact.write_bytes(b"exported bytes, then damaged")
    job = replace(_cpu_job(weights, tmp_path, (2,)), artifact=str(artifact), provenance=str(provenance))
    with pytest.raises(runner.DamagedArtifact, match="sha256"):
        runner.run_job(job)
    assert not artifact.exists() and (tmp_path / f"model.onnx{integrity.DAMAGED}").exists()
    assert not any(tmp_path.glob("dummy-bs*.json"))


def test_a_configuration_that_fails_before_its_baseline_is_its_row_and_the_group_goes_on(weights, tmp_path):
    """A loader that cannot open (here: its manifest is gone) fails before the configuration's first mark (the
    parent's bookkeeping raised KeyError on it): its row says why, the other rows of the group are measured."""
    from dataclasses import replace
    job = replace(_cpu_job(weights, tmp_path, (2,), loaders=("real", "dummy")), manifest=str(tmp_path / "gone.json"))
    rows = {r["config"]["loader"]: r for r in runner.run_job(job)}
    assert rows["dummy"]["status"] == "ok", rows["dummy"].get("reason")
    assert rows["real"]["status"] == "failed" and "gone.json" in rows["real"]["reason"]
