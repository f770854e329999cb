"""A benchmark job end to end on the CPU: processes, rows, the export's check, failures as rows."""
import os

import pytest
from measuring import cpu_request

from fmtbench import isolation
from fmtbench.measure import job
from fmtbench.measure.export_check import DamagedExport


def test_one_process_measures_every_configuration_and_each_memory_figure_is_its_own(weights, tmp_path):
    """Batch 2 measured after batch 64 in the same process reads what a fresh process reads for it, within the
    issue's bound (5 % or 20 MB): the previous configuration's buffers are released and it starts from its own
    baseline; the model's load and the library handles count alike in both. Measured here (64², 1 thread, the C
    heap keeping freed memory): batch 2 65-78 MB grouped in either order or fresh (about 9 MB of it comes and goes
    between processes); batch 64 87-136 MB grouped or fresh (its RSS varies between processes by more than the
    bound, so it is not compared). The jobs run in a fresh interpreter, as benchmark
    jobs do: a process that ran torch ops before forking (this pytest process) leaves its children lazy state that
    lands in their first configuration."""
    from dataclasses import replace
    jobs = [replace(cpu_request(weights, tmp_path / "g", (2, 64), processes=2), image_size=64)]
    jobs += [replace(cpu_request(weights, tmp_path / f"f{b}", (b,)), image_size=64) for b in (2, 64)]
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
    # a larger batch needs more: its first convolution's output alone is 16 MB more. Lowest against lowest: batch
    # 2's 9 MB that come and go put a fresh batch 2 at 78 MB beside a batch 64 at 87 (2026-12-07, full suite)
    assert min(grouped[64][1], grouped[64][2]) > min(grouped[2][1], grouped[2][2], alone) + 10
    assert grouped[2]["load"] > 30, "the fp32 weights (45 MB) are in every configuration's figure"


def test_a_row_records_its_settings_and_back_to_back_rate(weights, tmp_path):
    row = job.run_request(cpu_request(weights, tmp_path, (2,)))[0]
    assert row["measurement"]["processes"] == 1 and row["timing"]["throughput_fps"] > 0
    assert row["processes"][0]["configurations"] == 1 and row["timing"]["kind"] == "latency"
    # the C heap keeps a call's freed blocks for the next (glibc here), and the row says so
    assert row["measurement"]["harness"]["keep_freed_memory"] is True
    assert row["environment"]["c_heap_keeps_freed_memory"] is True


def test_a_damaged_export_is_set_aside_and_no_row_is_written(weights, tmp_path):
    """The benchmark hashes a file export before measuring: bytes changed after the export stop the job before it
    writes a row, and the export is set aside for the next plain run to rebuild."""
    from dataclasses import replace

    from fmtbench.atomic import sha256_artifact, write_json
    from fmtbench.workflow import integrity
    artifact = tmp_path / "model.onnx"
    artifact.write_bytes(b"exported bytes")
    provenance = tmp_path / "model.onnx.provenance.json"
    write_json(provenance, {"status": "ok", "sha256": sha256_artifact(str(artifact)), "reason": None})
    artifact.write_bytes(b"exported bytes, then damaged")
    request = replace(cpu_request(weights, tmp_path, (2,)), artifact=str(artifact), provenance=str(provenance))
    with pytest.raises(DamagedExport, match="sha256"):
        job.run_request(request)
    assert not artifact.exists() and (tmp_path / f"model.onnx{integrity.DAMAGED}").exists()
    assert not any(tmp_path.glob("dummy-bs*.json"))


def test_a_configuration_that_fails_before_its_baseline_is_its_row_and_the_group_goes_on(weights, tmp_path):
    """A loader that cannot open (here: its manifest is gone) fails before the configuration's first mark (the
    parent's bookkeeping raised KeyError on it): its row says why, the other rows of the group are measured."""
    from dataclasses import replace
    request = replace(cpu_request(weights, tmp_path, (2,), loaders=("real", "dummy")),
                      manifest=str(tmp_path / "gone.json"))
    rows = {r["config"]["loader"]: r for r in job.run_request(request)}
    assert rows["dummy"]["status"] == "ok", rows["dummy"].get("reason")
    assert rows["real"]["status"] == "failed" and "gone.json" in rows["real"]["reason"]


def test_the_tools_entry_point_measures_one_process_in_the_order_given(weights, tmp_path):
    from fmtbench.measure import probe
    measured = probe.one_process(cpu_request(weights, tmp_path, (2, 4)), [("dummy", 4), ("dummy", 2)], checks=False)
    assert measured.error is None and not measured.failures and measured.seconds > 0
    assert set(measured.readings) == {("dummy", 2), ("dummy", 4)}
    assert all(reading.timing.summary.median > 0 for reading in measured.readings.values())
    assert probe.order([("dummy", 2), ("dummy", 4)], 1, 2) == [("dummy", 4), ("dummy", 2)]
