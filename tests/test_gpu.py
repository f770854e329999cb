"""CUDA behaviour of the backends (marker gpu: skipped without a GPU; run on the lent H100)."""
import pytest
import torch

from fmtbench import data, export, memory, model, study
from fmtbench.backends import onnx as onnx_backend
from fmtbench.backends import torch as torch_backend
from fmtbench.backends.base import LoadRequest

pytestmark = pytest.mark.gpu


def _request(weights, fmt, precision, artifact=None, size=64, batches=(4, 8), **options):
    return LoadRequest(precision=precision, device="cuda", image_size=size, batch_sizes=batches, state_dict=weights,
                       artifact=artifact, options={**study.spec(fmt).options, **options})


def _export(weights, tmp_path, fmt, precision, device="cuda", size=64, **options):
    spec = study.spec(fmt)
    export_device, export_size = study.export_keys(fmt, device, size)
    artifact = tmp_path / f"{fmt}-{precision}.{spec.export_ext}"
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
    assert set(tuned["prefer_nhwc_trial_ms"]) == {"nchw", "nhwc"}
    assert tuned["prefer_nhwc"] == (tuned["prefer_nhwc_trial_ms"]["nhwc"] < tuned["prefer_nhwc_trial_ms"]["nchw"])


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


def test_inductor_package_compiles_once_and_agrees(weights, tmp_path):
    from fmtbench.backends import inductor
    artifact, provenance = _export(weights, tmp_path, "inductor", "fp16", max_autotune=False)
    assert provenance["details"]["compile_seconds"] > 0
    session = inductor.load(_request(weights, "inductor", "fp16", artifact))
    for batch_size in (4, 8):  # dynamic batch
        batch = data.dummy_batch(batch_size, 64, "cuda")
        assert (_logits(session, batch) - _reference(weights, batch)).abs().max() < 0.1


def test_gpu_decode_matches_cpu_decode(tmp_path):
    from fmtbench import images
    paths = [str(p) for p in images.generate(tmp_path, count=4, seed=0)]
    loader = data.bytes_loader(paths, batch_size=4, workers=0)
    on_gpu = data.decode_on_gpu(next(iter(loader)), 64)
    on_cpu = next(iter(data.real_loader(paths, 64, 4, workers=0, pin_memory=False)))
    assert on_gpu.shape == on_cpu.shape and on_gpu.device.type == "cuda"
    assert (on_gpu.cpu().float() - on_cpu.float()).abs().mean() < 3  # decoders differ by rounding only
