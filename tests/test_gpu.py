"""CUDA behaviour of the backends (marker gpu: skipped without a GPU; run on the lent H100)."""
import pytest
import torch

from fmtbench import backends, data, export, memory, model, study
from fmtbench.backends import onnx as onnx_backend
from fmtbench.backends import torch as torch_backend
from fmtbench.backends.base import LoadRequest
from fmtbench.data import InputFormat

pytestmark = pytest.mark.gpu


def _request(weights, fmt, precision, artifact=None, size=64, batches=(4, 8), **options):
    return LoadRequest(precision=precision, device="cuda", image_size=size, batch_sizes=batches, state_dict=weights,
                       artifact=artifact, options={**study.spec(fmt).options, **options})


def _export(weights, tmp_path, fmt, precision, device="cuda", size=64, **options):
    spec = study.spec(fmt)
    export_device, export_size = study.export_keys(fmt, device, size)
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


def test_torch_fp16_is_half_channels_last_and_agrees(weights):
    session = torch_backend.load(_request(weights, "torch", "fp16"))
    assert next(session.module.parameters()).dtype == torch.float16
    assert session.info["memory_format"] == "channels_last"
    batch = data.dummy_batch(8, 64, "cuda")
    assert session.prepare(batch).is_contiguous(memory_format=torch.channels_last)
    assert (_logits(session, batch) - _reference(weights, batch)).abs().max() < 0.1


def test_fp32_is_strict_by_default_and_tf32_only_when_asked(weights):
    session = torch_backend.load(_request(weights, "torch", "fp32"))
    assert session.info["math"] == "fp32 (strict, TF32 off)" and not torch.backends.cudnn.allow_tf32
    session = torch_backend.load(_request(weights, "torch", "fp32", fp32_math="tf32"))
    assert session.info["math"] == "fp32 (TF32)" and torch.backends.cudnn.allow_tf32


def test_cuda_graph_replay_matches_eager_and_takes_new_inputs(weights):
    eager = torch_backend.load(_request(weights, "torch", "fp16"))
    graphed = torch_backend.load(_request(weights, "torch", "fp16", cuda_graph=True))
    for seed in (0, 1):
        batch = data.dummy_batch(8, 64, "cuda", seed=seed)
        assert torch.equal(_logits(graphed, batch), _logits(eager, batch))


def test_autocast_variant_keeps_fp32_weights(weights):
    session = torch_backend.load(_request(weights, "torch", "fp16", autocast=True))
    assert next(session.module.parameters()).dtype == torch.float32
    assert session.info["math"].startswith("fp16 (autocast")
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
    assert (logits - _reference(weights, batch)).abs().max() < 0.1


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
    session = onnx_backend.load(_request(weights, "onnx", "fp16", artifact, size=224, batches=(64,), prefer_nhwc=False))
    session.run(session.prepare(data.dummy_batch(64, 224, "cuda")))
    record = tracker.stop()
    assert record["allocated_mb"] > 100, record
    assert record["torch_max_allocated_mb"] < record["allocated_mb"]


def test_torchscript_cuda_export_loads_and_agrees(weights, tmp_path):
    from fmtbench.backends import torchscript
    artifact, _ = _export(weights, tmp_path, "torchscript", "fp16", size="any")
    session = torchscript.load(_request(weights, "torchscript", "fp16", artifact))
    batch = data.dummy_batch(8, 64, "cuda")
    assert (_logits(session, batch) - _reference(weights, batch)).abs().max() < 0.1


def test_torch_compile_loads_from_the_exported_cache_and_agrees(weights, tmp_path):
    artifact, provenance = _export(weights, tmp_path, "inductor", "fp16")
    details = provenance["details"]
    assert details["graphs_compiled"] == 1 and details["warm_load"]["cache"].get("fxgraph_cache_hit") == 1
    session = backends.get("inductor").load(_request(weights, "inductor", "fp16", artifact))
    for batch_size in (4, 8):  # dynamic batch
        batch = data.dummy_batch(batch_size, 64, "cuda")
        assert (_logits(session, batch) - _reference(weights, batch)).abs().max() < 0.1
    assert session.info["inductor_cache"].get("fxgraph_cache_hit") == 1


def test_gpu_decode_matches_cpu_decode(tmp_path):
    from fmtbench import images
    paths = [str(p) for p in images.generate(tmp_path, count=4, seed=0)]
    items = [(path, open(path, "rb").read()) for path in paths]
    on_gpu = data.decode_on_gpu(items, 64)
    on_cpu, _ = data.ImageFiles(paths, 64).__getitems__(range(4))
    assert on_gpu.shape == on_cpu.shape and on_gpu.device.type == "cuda"
    assert (on_gpu.cpu().float() - on_cpu.float()).abs().mean() < 3  # decoders differ by rounding only


def test_gpu_decode_source_runs_ahead_of_the_model(tmp_path):
    from fmtbench import images
    from fmtbench.atomic import write_json
    paths = [str(p) for p in images.generate(tmp_path / "images", count=64, seed=0)]
    manifest = tmp_path / "manifest.json"
    write_json(manifest, {"images": [{"path": p} for p in paths]})
    source = data.GpuDecodeSource(data.SourceRequest("cuda", 224, 32, 2, str(manifest),
                                                     InputFormat("float16", True)))
    first = source.next()
    assert first.dtype == torch.float16 and first.is_contiguous(memory_format=torch.channels_last)
    source.start_timing()
    for _ in range(10):
        source.next()
        torch.cuda._sleep(5_000_000)  # a "model" that keeps the GPU busy: decoding goes on beside it
    stats = source.stats()
    source.close()
    assert stats["decode_capacity_fps"] > 0 and stats["data_wait_ms"]["median"] < 5
