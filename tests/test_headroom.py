"""A configuration too big for the memory free is an `oom` row before it runs; either library's out-of-memory is
`oom`; an `oom` is not retried by the next plain runs (it would fail the same way)."""
import json

from measuring import cpu_request

from fmtbench import isolation
from fmtbench.measure import headroom, job, measuring_process
from fmtbench.workflow import integrity

GB = 1024**3


def test_the_estimate_grows_with_batch_image_size_and_precision():
    small = headroom.estimate(2, 224, "fp32")
    assert small.weights == headroom.RESNET18_PARAMETERS * 8 and small.activations == 2 * 224 * 224 * 35 * 4
    # the configuration: 224², batch 4096, fp32 on the CPU reached 17.3 GB and kept growing
    assert headroom.estimate(4096, 224, "fp32").total > 28 * 1e9
    assert headroom.estimate(4096, 224, "fp16").activations * 2 == headroom.estimate(4096, 224, "fp32").activations
    assert headroom.refusal("cpu", 4096, 224, "fp32", free=20 * GB).startswith(
        "estimated to need 26.9 GB (weights 89 MB, activations at batch 4096, 224×224, fp32: 26.8 GB), more than the "
        "20.0 GB this machine has available: not measured")
    assert headroom.refusal("cpu", 32, 224, "fp32", free=20 * GB) is None
    assert headroom.refusal("cuda", 4096, 512, "fp16", free=None) is None, "nothing refused where free is unknown"
    assert "the GPU has free" in headroom.refusal("cuda", 4096, 512, "fp16", free=70 * GB)


def test_the_free_memory_of_the_cpu_is_what_the_kernel_can_give():
    import psutil
    free = headroom.free_bytes("cpu")
    assert 0 < free <= psutil.virtual_memory().total


def test_a_configuration_estimated_not_to_fit_is_an_oom_row_and_the_study_goes_on(weights, tmp_path, monkeypatch):
    """Free memory pretended to be 300 MB: batch 4096 at 32² (about 650 MB) is refused with its estimate and the free
    figure, before any process runs; batch 2 is measured."""
    monkeypatch.setattr(headroom, "free_bytes", lambda device: 300 * headroom.MB)
    request = cpu_request(weights, tmp_path, (2, 4096))
    rows = {row["config"]["batch_size"]: row for row in job.run_request(request)}
    assert rows[2]["status"] == "ok", rows[2]["reason"]
    refused = rows[4096]
    assert refused["status"] == "oom" and refused["transient"] is False, refused
    assert refused["reason"] == ("estimated to need 649 MB (weights 89 MB, activations at batch 4096, 32×32, fp32: "
                                 "560 MB), more than the 300 MB this machine has available: not measured")
    assert integrity.result_problem(tmp_path / "dummy-bs4096.json") is None, "not remeasured by the next runs"


def _allocates_a_petabyte():
    import torch
    return torch.empty(2**50, dtype=torch.uint8)


def test_torch_refusing_an_allocation_on_the_cpu_is_oom_not_a_failure():
    """torch's words on the CPU ("DefaultCPUAllocator: can't allocate memory") were filed as `failed`."""
    outcome = isolation.run_forked(_allocates_a_petabyte, timeout=60)
    assert outcome.status == "oom" and "can't allocate memory" in outcome.reason, outcome
    assert not outcome.transient
    assert isolation.classify(MemoryError()) == "oom"


def _runs_out_of_memory(request, session, planned, accounting, feeds=None):
    """In the measuring process: ONNX Runtime's words for an allocation it could not make."""
    isolation.mark("config_start", loader=planned.loader, batch=planned.batch)
    raise RuntimeError("[ONNXRuntimeError] : 6 : RUNTIME_EXCEPTION : Non-zero status code returned while running "
                       "Conv node. Name:'/conv1/Conv' Status Message: Failed to allocate memory for requested buffer "
                       "of size 13153337344")


def test_an_oom_the_library_reports_is_not_retried_by_the_next_plain_runs(weights, tmp_path, monkeypatch):
    """ONNX Runtime's `oom` counted as transient: the next two plain runs measured it again (60 s and 16 GB each)."""
    monkeypatch.setattr(measuring_process, "measure_configuration", _runs_out_of_memory)
    [row] = job.run_request(cpu_request(weights, tmp_path, (2,)))
    assert row["status"] == "oom" and row["transient"] is False and row["attempt"] == 1, row
    assert integrity.result_problem(tmp_path / "dummy-bs2.json") is None
    assert json.loads((tmp_path / "dummy-bs2.json").read_text())["status"] == "oom"
