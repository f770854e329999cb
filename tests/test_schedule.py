"""The job process's scheduling: the order of each measuring process, extra processes, a process that dies."""
import pytest
from measuring import cpu_request

from fmtbench import isolation
from fmtbench.measure import job, measuring_process, schedule


def test_each_process_takes_the_configurations_in_another_order_loaders_of_a_batch_together():
    configs = [(loader, batch) for batch in (32, 40, 48, 56, 64) for loader in ("real", "dummy", "gpu")]
    orders = [schedule.order(configs, index, 2) for index in range(2)]
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
    firsts = {ordered[i] for ordered in (schedule.order(configs, index, 3) for index in range(3))
              for i in range(0, 15, 3)}
    assert firsts == set(configs)


def _fake_config(request, session, planned, accounting, feeds=None):
    """In the child: a measurement whose median depends on how often this configuration was measured before."""
    import json
    import os

    from fmtbench import row_parts, stats
    from fmtbench.measure.messages import Reading
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
    memory = row_parts.MemoryReading(method="fake", baseline_mb=1.0, peak_mb=2.0, allocated_mb=1.0)
    return Reading(timing=process, clock="fake", first_run_ms=1.0, memory=memory, gpu=None, loader=None,
                   accuracy=None, accuracy_error=None, contention=None)


def test_rows_whose_processes_disagree_get_more_processes_up_to_the_maximum(weights, tmp_path, monkeypatch):
    monkeypatch.setenv("FAKE_COUNTS", str(tmp_path / "counts.json"))
    monkeypatch.setattr(measuring_process, "measure_configuration", _fake_config)
    rows = {r["config"]["batch_size"]: r for r in job.run_request(cpu_request(weights, tmp_path, (2, 8), processes=2,
                                                                          max_processes=5))}
    assert len(rows[2]["processes"]) == 2 and not rows[2]["timing"]["unstable"]
    assert len(rows[8]["processes"]) == 5 and rows[8]["timing"]["unstable"]
    assert rows[8]["timing"]["median"] == pytest.approx(1.1)
    assert [p["configurations"] for p in rows[8]["processes"]] == [2, 2, 1, 1, 1], "extra processes: that row only"


def test_a_process_that_dies_loses_only_the_configuration_it_was_measuring(weights, tmp_path, monkeypatch):
    monkeypatch.setenv("FAKE_COUNTS", str(tmp_path / "counts.json"))
    monkeypatch.setenv("FAKE_CRASH", "1")
    monkeypatch.setattr(measuring_process, "measure_configuration", _fake_config)
    rows = {r["config"]["batch_size"]: r for r in job.run_request(cpu_request(weights, tmp_path, (2, 4, 6)))}
    assert rows[4]["status"] == "failed", rows[4]["reason"]
    assert "exit code 9" in rows[4]["reason"] and "measuring process 1" in rows[4]["reason"]
    assert rows[2]["status"] == rows[6]["status"] == "ok"
    assert rows[6]["processes"][0]["process"] == 2, "the rest of the group went to the next process"


def _rows(weights, tmp_path, monkeypatch, **request):
    monkeypatch.setenv("FAKE_COUNTS", str(tmp_path / "counts.json"))
    monkeypatch.setattr(measuring_process, "measure_configuration", _fake_config)
    return {(r["config"]["loader"], r["config"]["batch_size"]): r
            for r in job.run_request(cpu_request(weights, tmp_path, **request))}


def test_model_alone_rows_are_measured_in_processes_without_a_real_loaders_workers(weights, tmp_path, monkeypatch):
    """Idle DataLoader workers alive beside a launch-bound row moved it (H200 host probe: 2.43 ms instead of 1.28,
    p90 5.8 ms), and the real loaders measured before a configuration left their mark in its memory figure."""
    rows = _rows(weights, tmp_path, monkeypatch, batches=(2,), loaders=("real", "dummy"))
    assert rows[("dummy", 2)]["processes"][0]["configurations"] == 1
    assert rows[("real", 2)]["processes"][0]["configurations"] == 1
    assert rows[("dummy", 2)]["processes"][0]["process"] == 1, "the model alone first: no worker started yet"
    assert rows[("dummy", 2)]["measurement"]["harness"]["loaders_apart"] is True


def test_with_loaders_together_a_process_takes_every_loader_of_its_batch_sizes(weights, tmp_path, monkeypatch):
    from dataclasses import asdict, replace

    from fmtbench.settings import Harness
    request = cpu_request(weights, tmp_path, batches=(2,), loaders=("real", "dummy"))
    together = replace(request, measurement=replace(request.measurement, harness=asdict(Harness(loaders_apart=False))))
    monkeypatch.setenv("FAKE_COUNTS", str(tmp_path / "counts.json"))
    monkeypatch.setattr(measuring_process, "measure_configuration", _fake_config)
    rows = {r["config"]["loader"]: r for r in job.run_request(together)}
    assert rows["dummy"]["processes"][0]["configurations"] == 2 == rows["real"]["processes"][0]["configurations"]
    assert rows["dummy"]["measurement"]["harness"]["loaders_apart"] is False


def test_only_model_alone_rows_get_extra_processes(weights, tmp_path, monkeypatch):
    """A real-loader row's spread is the loader's as much as the model's: reported, not chased with processes."""
    rows = _rows(weights, tmp_path, monkeypatch, batches=(8,), loaders=("real", "dummy"), processes=2,
                 max_processes=3)
    assert len(rows[("dummy", 8)]["processes"]) == 3 and rows[("dummy", 8)]["timing"]["unstable"]
    assert len(rows[("real", 8)]["processes"]) == 2 and rows[("real", 8)]["timing"]["unstable"]


def test_a_jobs_image_sizes_take_their_rounds_in_turn_so_a_rows_processes_are_spread_over_the_job(
        weights, tmp_path, monkeypatch):
    """Two image sizes, two processes per row: size 32's second process runs after size 48's first, not right after
    its own first (a drift of the host shows in the row's range instead of moving the whole row)."""
    from dataclasses import replace
    monkeypatch.setenv("FAKE_COUNTS", str(tmp_path / "counts.json"))
    monkeypatch.setattr(measuring_process, "measure_configuration", _fake_config)
    requests = []
    for size in (32, 48):
        base = cpu_request(weights, tmp_path, (2,), processes=2, max_processes=2)
        requests.append(replace(base, image_size=size, outputs={("dummy", 2): str(tmp_path / f"{size}.json")}))
    rows = {r["config"]["image_size"]: r for r in job.run(requests)}
    forks = {size: [p["stages_s"]["forked_at"] for p in rows[size]["processes"]] for size in rows}
    assert all(len(times) == 2 for times in forks.values())
    assert forks[32][0] < forks[48][0] < forks[32][1] < forks[48][1], forks


def test_a_jobs_image_sizes_run_their_model_alone_processes_of_a_round_then_their_end_to_end_ones(
        weights, tmp_path, monkeypatch):
    """Per round, every size's model-alone process, then every size's real-loader process: a CUDA job's real-loader
    processes follow one another under one shared turn on the host, and a CPU row waiting for its turn gets a stretch
    of model-alone processes to run beside (host_turns)."""
    from dataclasses import replace
    monkeypatch.setenv("FAKE_COUNTS", str(tmp_path / "counts.json"))
    monkeypatch.setattr(measuring_process, "measure_configuration", _fake_config)
    requests = []
    for size in (32, 48):
        base = cpu_request(weights, tmp_path, (2,), loaders=("real", "dummy"), processes=2, max_processes=2)
        requests.append(replace(base, image_size=size, outputs={
            (loader, 2): str(tmp_path / f"{loader}-{size}.json") for loader in ("real", "dummy")}))
    forks = sorted((process["stages_s"]["forked_at"], row["config"]["loader"], row["config"]["image_size"])
                   for row in job.run(requests) for process in row["processes"])
    assert [(loader, size) for _, loader, size in forks] == [
        ("dummy", 32), ("dummy", 48), ("real", 32), ("real", 48)] * 2, forks


def _shared_holder(seconds):
    """Another process holding a shared turn on this session's lock file (a real loader's workers, an export)."""
    import subprocess
    import sys
    code = ("import sys, time\nfrom fmtbench import host_turns\nhost_turns.Turns().take('shared')\n"
            "print('held', flush=True)\ntime.sleep(float(sys.argv[1]))\n")
    holder = subprocess.Popen([sys.executable, "-c", code, str(seconds)], stdout=subprocess.PIPE, text=True)
    holder.stdout.readline()
    return holder


def test_a_cpu_rows_measuring_process_runs_on_an_exclusive_turn_after_the_shared_holders(weights, tmp_path,
                                                                                        monkeypatch):
    monkeypatch.setenv("FAKE_COUNTS", str(tmp_path / "counts.json"))
    monkeypatch.setattr(measuring_process, "measure_configuration", _fake_config)
    holder = _shared_holder(2)
    try:
        row, = job.run_request(cpu_request(weights, tmp_path, (2,)))
    finally:
        holder.wait(timeout=60)
    turn = row["processes"][0]["turn"]
    assert turn["kind"] == "exclusive" and turn["coordinated"]
    assert 1.0 <= turn["waited_s"] < 30, turn
    assert _exclusive_free(), "given back when its process ended"


def test_without_turns_a_cpu_row_waits_for_nothing_and_records_none(weights, tmp_path, monkeypatch):
    from dataclasses import asdict, replace

    from fmtbench.settings import Harness
    monkeypatch.setenv("FAKE_COUNTS", str(tmp_path / "counts.json"))
    monkeypatch.setattr(measuring_process, "measure_configuration", _fake_config)
    request = cpu_request(weights, tmp_path, (2,))
    request = replace(request, measurement=replace(request.measurement, harness=asdict(Harness(host_turns=False))))
    holder = _shared_holder(30)
    try:
        row, = job.run_request(request)
    finally:
        holder.kill()
        holder.wait(timeout=60)
    assert "turn" not in row["processes"][0]
    assert row["measurement"]["harness"]["host_turns"] is False


def _exclusive_free() -> bool:
    """Whether nobody holds a turn on this session's lock file (another open file: flock tells them apart)."""
    import fcntl
    import os

    from fmtbench import host_turns
    fd = os.open(host_turns.lock_path(), os.O_RDONLY | os.O_CREAT, 0o666)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False
    finally:
        os.close(fd)


def test_a_cuda_jobs_real_loader_processes_keep_one_shared_turn_and_give_it_back_for_the_model_alone(weights,
                                                                                                    tmp_path):
    """No gap between two real-loader processes for a waiting CPU row to squeeze into (it would stop the GPU job
    behind it); a model-alone process runs without a turn, so a CPU row may run beside it."""
    from dataclasses import replace

    from fmtbench import backends, host_turns
    request = replace(cpu_request(weights, tmp_path, (2,), loaders=("real", "dummy", "real_gpu_decode")),
                      device="cuda")
    turns = host_turns.Turns()
    scheduler = schedule.Scheduler(request, backends.spec("torch"), turns)
    end_to_end = [("real", 2), ("real_gpu_decode", 2)]
    try:
        assert scheduler.take_turn(end_to_end).kind == "shared"
        assert not _exclusive_free()
        assert scheduler.take_turn(end_to_end).waited_s == 0 and not _exclusive_free(), "kept, not taken anew"
        assert scheduler.take_turn([("dummy", 2)]) is None
        assert _exclusive_free(), "given back before the model alone"
    finally:
        turns.close()


def test_real_loader_rows_may_take_fewer_processes_than_the_model_alone_rows(weights, tmp_path, monkeypatch):
    """`end_to_end_processes`: a real-loader row's processes (its spread is the host's decoding as much as the
    model's), set apart from the model-alone rows' `processes`; each row says how many it had."""
    from dataclasses import replace
    request = cpu_request(weights, tmp_path, (2, 4), loaders=("real", "dummy"), processes=2, max_processes=2)
    request = replace(request, measurement=replace(request.measurement, end_to_end_processes=1))
    monkeypatch.setenv("FAKE_COUNTS", str(tmp_path / "counts.json"))
    monkeypatch.setattr(measuring_process, "measure_configuration", _fake_config)
    rows = {(r["config"]["loader"], r["config"]["batch_size"]): r for r in job.run_request(request)}
    assert [len(rows[("dummy", b)]["processes"]) for b in (2, 4)] == [2, 2]
    assert [len(rows[("real", b)]["processes"]) for b in (2, 4)] == [1, 1]
    assert rows[("real", 2)]["measurement"]["end_to_end_processes"] == 1


def test_the_jobs_log_says_where_each_image_sizes_preparation_went(weights, tmp_path, monkeypatch, caplog):
    """A CUDA job spent 7.7–13.6 s checking and preparing its exports on the lent H100 (2026-12-07 11:38): the log
    splits that per image size into the export's check, the availability probe, the imports its children inherit,
    the environment's capture and (ONNX Runtime) the forked tuning."""
    import logging
    caplog.set_level(logging.INFO, logger="fmtbench.measure.job")
    _rows(weights, tmp_path, monkeypatch, batches=(2,))
    line = next(record.getMessage() for record in caplog.records if "prepared in" in record.getMessage())
    assert line.startswith("torch cpu fp32 ")
    for step in ("export checked", "availability", "imports", "environment"):
        assert f"{step} " in line and " s" in line, line
    assert any("exports checked and prepared in" in record.getMessage() for record in caplog.records)


def _freeze_count_config(request, session, planned, accounting, feeds=None):
    """In the child: how many objects the garbage collector has frozen when a configuration starts."""
    import gc
    import os
    with open(os.environ["FREEZE_COUNTS"], "a") as handle:
        handle.write(f"{gc.get_freeze_count()}\n")
    return _fake_config(request, session, planned, accounting, feeds)


@pytest.mark.parametrize("freeze", [True, False])
def test_a_measuring_process_freezes_what_it_holds_after_loading_so_collections_between_configurations_are_cheap(
        weights, tmp_path, monkeypatch, freeze):
    """A collection in a process that has imported torch scans ~340,000 objects (0.17-0.34 s on the 2-core machine,
    2026-12-07); `_release` runs one between every two configurations (a CUDA job of the default grid has 120 of
    them). With `freeze_after_load` the process moves its imports and model into the permanent generation right
    after loading, so that collection sees only what the configurations made; off, nothing is frozen."""
    import gc
    from dataclasses import asdict, replace

    from fmtbench.settings import Harness
    counts = tmp_path / "freeze.txt"
    monkeypatch.setenv("FREEZE_COUNTS", str(counts))
    monkeypatch.setenv("FAKE_COUNTS", str(tmp_path / "counts.json"))
    monkeypatch.setattr(measuring_process, "measure_configuration", _freeze_count_config)
    request = cpu_request(weights, tmp_path, batches=(2, 4))
    request = replace(request, measurement=replace(request.measurement,
                                                   harness=asdict(Harness(freeze_after_load=freeze))))
    frozen_before = gc.get_freeze_count()
    try:
        rows = job.run_request(request)  # the job process here is pytest's: it freezes too where the switch is on
    finally:
        if freeze:
            gc.unfreeze()
    assert all(row["status"] == "ok" for row in rows)
    seen = [int(line) for line in counts.read_text().split() if line.isdigit()]
    assert len(seen) == 2
    if freeze:
        assert all(count > 10_000 for count in seen), seen  # torch's and the model's objects, at least
    else:
        assert seen == [frozen_before] * 2, seen
