"""CUDA behaviour of the backends (marker gpu: skipped without a GPU; run on the lent H100)."""
import pytest
import torch

from fmtbench import accuracy, backends, data, export, model
from fmtbench.backends import onnx as onnx_backend
from fmtbench.backends import torch as torch_backend
from fmtbench.backends.base import LoadRequest
from fmtbench.measure import memory
from fmtbench.workflow import plan

pytestmark = [pytest.mark.gpu, pytest.mark.usefixtures("default_stream")]


def _request(weights, fmt, precision, artifact=None, size=64, batches=(4, 8), **options):
    return LoadRequest(precision=precision, device="cuda", image_size=size, batch_sizes=batches, state_dict=weights,
                       artifact=artifact, options={**plan.spec(fmt).options, **options})


def _export(weights, tmp_path, fmt, precision, device="cuda", size=64, **options):
    spec = plan.spec(fmt)
    export_device, export_size = plan.export_keys(fmt, device, size)
    artifact = tmp_path / f"{fmt}-{precision}.{spec.artifact.ext}"
    provenance = export.run(fmt, precision, export_device, export_size, weights, [4, 8],
                            {**spec.options, **options}, artifact, tmp_path / f"{fmt}-{precision}.json")
    assert provenance["status"] == "ok", provenance["reason"]
    return artifact, provenance


def _reference(weights, batch):
    with torch.no_grad():
        return model.build(weights)(batch.cpu())


def _logits(session, batch):
    return session.logits(session.run(session.prepare(batch)))


def _agrees(logits, reference, precision="fp16", fp32_math="strict"):
    """Within the accuracy check's relative limit for the arithmetic (fp16: 2.1e-3), not an absolute 0.1."""
    result = accuracy.compare(logits.numpy(), reference.numpy(), precision, fp32_math)
    return result["within_limit"], result["max_rel_error"]


def test_torch_fp16_is_half_channels_last_and_agrees(weights):
    session = torch_backend.load(_request(weights, "torch", "fp16"))
    assert next(session.module.parameters()).dtype == torch.float16
    assert session.info["memory_format"] == "channels_last"
    batch = data.dummy_batch(8, 64, "cuda")
    assert session.prepare(batch).is_contiguous(memory_format=torch.channels_last)
    assert _agrees(_logits(session, batch), _reference(weights, batch))[0]


def test_fp32_is_strict_by_default_and_tf32_only_when_asked(weights):
    session = torch_backend.load(_request(weights, "torch", "fp32"))
    assert session.info["math"] == "fp32" and not torch.backends.cudnn.allow_tf32
    batch = data.dummy_batch(8, 64, "cuda")
    assert _agrees(_logits(session, batch), _reference(weights, batch), "fp32")[0]
    session = torch_backend.load(_request(weights, "torch", "fp32", fp32_math="tf32"))
    assert session.info["math"] == "tf32" and torch.backends.cudnn.allow_tf32  # PyTorch's default
    assert not torch.backends.cuda.matmul.allow_tf32  # ... and so is full-precision matmul


def test_cuda_graph_replay_matches_eager_and_takes_new_inputs(weights):
    eager = torch_backend.load(_request(weights, "torch", "fp16"))
    graphed = torch_backend.load(_request(weights, "torch", "fp16", cuda_graph=True))
    for seed in (0, 1):
        batch = data.dummy_batch(8, 64, "cuda", seed=seed)
        assert torch.equal(_logits(graphed, batch), _logits(eager, batch))


def test_autocast_variant_keeps_fp32_weights(weights):
    session = torch_backend.load(_request(weights, "torch", "fp16", autocast=True))
    assert next(session.module.parameters()).dtype == torch.float32
    assert session.info["math"] == "fp16_autocast"
    out = session.run(session.prepare(data.dummy_batch(4, 64, "cuda")))
    assert out.dtype == torch.float16


def test_onnx_runs_on_cuda_ep_with_io_binding_fp16_and_no_cudnn_fallback(weights, tmp_path, capfd):
    artifact, provenance = _export(weights, tmp_path, "onnx", "fp16", device="any")
    assert provenance["details"]["float_initializer_types"] == ["FLOAT16"]
    capfd.readouterr()
    session = onnx_backend.load(_request(weights, "onnx", "fp16", artifact, prefer_nhwc=False))
    batch = data.dummy_batch(8, 64, "cuda")
    logits = _logits(session, batch)
    log = capfd.readouterr().err
    assert session.info["providers"][0] == "CUDAExecutionProvider"
    assert session.info["cudnn_conv_algo_search"] == "EXHAUSTIVE"
    assert "Fallback mode" not in log, log[-2000:]
    out = session.run(session.prepare(batch))
    assert out.dtype == torch.float16 and out.device.type == "cuda"
    assert _agrees(logits, _reference(weights, batch))[0]


def test_onnx_runs_on_the_processs_stream_so_its_device_time_is_measured(weights, tmp_path):
    """ORT's kernels on the torch stream the process made current (user_compute_stream): a spin kernel queued on
    it first delays them, so timing.GpuTime measures ORT's device time as it does torch's."""
    from fmtbench.measure import timing
    artifact, _ = _export(weights, tmp_path, "onnx", "fp16", device="any")
    session = onnx_backend.load(_request(weights, "onnx", "fp16", artifact, prefer_nhwc=False))
    assert not session.own_stream and "user_compute_stream" in session.info["compute_stream"]
    assert session.info["intra_op_threads"] == 1
    assert torch.cuda.current_stream().cuda_stream != 0
    batch = data.dummy_batch(8, 64, "cuda")
    prepared = session.prepare(batch)
    clock, gpu = timing.CudaClock(), timing.GpuTime()
    session.run(prepared)
    host = sorted(clock.time(lambda: session.run(prepared)) * 1e3 for _ in range(9))[4]
    device = sorted(gpu.time(lambda: session.run_queued(prepared), host) for _ in range(5))[2]
    waited = sorted(gpu.time(lambda: session.run(prepared), host) for _ in range(5))[2]
    assert 0 < device <= host * 1.05 and device <= waited, (device, waited, host)
    assert _agrees(_logits(session, batch), _reference(weights, batch))[0]
    torch.cuda.synchronize()
    assert torch.equal(session.logits(session.run_queued(prepared)), session.logits(session.run(prepared)))


def test_onnx_cuda_graph_replays_new_inputs(weights, tmp_path):
    artifact, _ = _export(weights, tmp_path, "onnx", "fp16", device="any")
    plain = onnx_backend.load(_request(weights, "onnx", "fp16", artifact, prefer_nhwc=False))
    graphed = onnx_backend.load(_request(weights, "onnx", "fp16", artifact, prefer_nhwc=False, enable_cuda_graph=True))
    for seed in (0, 1, 2):
        batch = data.dummy_batch(8, 64, "cuda", seed=seed)
        assert (_logits(graphed, batch) - _logits(plain, batch)).abs().max() < 1e-2


def test_prefer_nhwc_is_measured_both_ways(weights, tmp_path):
    artifact, _ = _export(weights, tmp_path, "onnx", "fp16", device="any")
    tuned = onnx_backend.tune(_request(weights, "onnx", "fp16", artifact))
    medians = tuned["prefer_nhwc_trial"]["median_ms"]
    assert set(medians) == {"nchw", "nhwc"} and tuned["prefer_nhwc_trial"]["interleaved"]
    assert tuned["prefer_nhwc"] == onnx_backend.prefer_nhwc_decision(medians["nchw"], medians["nhwc"])


def test_ort_fp16_input_made_in_its_final_form_costs_no_staging_memory(weights, tmp_path):
    """The fp32 dummy batch cast in prepare() put +38.5 MB on ORT fp16 rows at 224² batch 64 (torch could reuse
    the freed block, ORT could not)."""
    artifact, _ = _export(weights, tmp_path, "onnx", "fp16", device="any", size=224)
    request = _request(weights, "onnx", "fp16", artifact, size=224, batches=(64,), prefer_nhwc=False)
    batch = data.DummySource(data.SourceRequest("cuda", 224, 64, 0, None, onnx_backend.input_format(request))).batch
    session = onnx_backend.load(request)
    prepared = session.prepare(batch)
    assert prepared[1].data_ptr() == batch.data_ptr(), "bound as it is: no cast, no copy"


def test_device_memory_tracker_sees_onnxruntime(weights, tmp_path):
    """The seed read 36.8 MB for ORT: torch's allocator cannot see ORT's arena. Device memory can."""
    artifact, _ = _export(weights, tmp_path, "onnx", "fp16", device="any", size=224)
    torch.zeros(1, device="cuda")
    tracker = memory.CudaTracker().start()
    torch.cuda.reset_peak_memory_stats()  # earlier tests' allocations are not this session's
    session = onnx_backend.load(_request(weights, "onnx", "fp16", artifact, size=224, batches=(64,), prefer_nhwc=False))
    session.run(session.prepare(data.dummy_batch(64, 224, "cuda")))
    record = {**tracker.stop(), **memory.torch_peaks()}
    assert record["allocated_mb"] > 100, record
    assert record["torch_max_allocated_mb"] < record["allocated_mb"]


def test_torchscript_cuda_export_loads_and_agrees(weights, tmp_path):
    from fmtbench.backends import torchscript
    artifact, _ = _export(weights, tmp_path, "torchscript", "fp16", size="any")
    session = torchscript.load(_request(weights, "torchscript", "fp16", artifact))
    batch = data.dummy_batch(8, 64, "cuda")
    assert _agrees(_logits(session, batch), _reference(weights, batch))[0]


def test_torch_compile_loads_from_the_exported_cache_and_agrees(weights, tmp_path):
    artifact, provenance = _export(weights, tmp_path, "inductor", "fp16")
    details = provenance["details"]
    assert details["graphs_compiled"] == 1 and details["warm_load"]["cache"].get("fxgraph_cache_hit") == 1
    session = backends.get("inductor").load(_request(weights, "inductor", "fp16", artifact))
    for batch_size in (4, 8):  # dynamic batch
        batch = data.dummy_batch(batch_size, 64, "cuda")
        assert _agrees(_logits(session, batch), _reference(weights, batch))[0]
    assert session.info["inductor_cache"].get("fxgraph_cache_hit") == 1

