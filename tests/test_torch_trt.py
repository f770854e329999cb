"""Everything around the Torch-TensorRT call, testable without TensorRT."""
import sys
import types

import pytest
import torch

from fmtbench.backends import torch_trt
from fmtbench.backends.base import ExportRequest


class FakeInput:
    def __init__(self, **kwargs):
        self.kwargs = kwargs


@pytest.fixture
def fake_torch_tensorrt(monkeypatch):
    module = types.SimpleNamespace(Input=FakeInput, __version__="2.14.0")
    monkeypatch.setitem(sys.modules, "torch_tensorrt", module)
    return module


def request(precision="fp16", size=224, batches=(32, 40, 64), **options):
    return ExportRequest(precision=precision, device="cuda", image_size=size, batch_sizes=batches,
                         options={**torch_trt.SPEC.options, **options})


def test_shape_range_spans_the_configured_batches():
    assert torch_trt.shape_range(256, [48, 32, 64]) == {
        "min_shape": (32, 3, 256, 256), "opt_shape": (64, 3, 256, 256), "max_shape": (64, 3, 256, 256)}


def test_fp16_is_strong_typing_via_half_inputs_never_enabled_precisions(fake_torch_tensorrt, tmp_path):
    kwargs = torch_trt.compile_kwargs(request("fp16"))
    assert kwargs["ir"] == "dynamo"
    assert "enabled_precisions" not in kwargs
    (spec,) = kwargs["inputs"]
    assert spec.kwargs["dtype"] == torch.float16
    assert spec.kwargs["min_shape"] == (32, 3, 224, 224) and spec.kwargs["max_shape"] == (64, 3, 224, 224)


def test_fp32_is_strict_unless_tf32_is_asked_for(fake_torch_tensorrt):
    assert torch_trt.compile_kwargs(request("fp32"))["disable_tf32"] is True
    assert torch_trt.compile_kwargs(request("fp32", fp32_math="tf32"))["disable_tf32"] is False
    assert torch_trt.compile_kwargs(request("fp32"))["inputs"][0].kwargs["dtype"] == torch.float32


def test_timing_cache_is_persistent_under_artifacts(fake_torch_tensorrt):
    path = torch_trt.compile_kwargs(request())["timing_cache_path"]
    assert path == "artifacts/cache/tensorrt/timing_cache.bin"


def test_optional_compile_settings_pass_through(fake_torch_tensorrt):
    kwargs = torch_trt.compile_kwargs(request(optimization_level=5, workspace_size=1 << 30))
    assert kwargs["optimization_level"] == 5 and kwargs["workspace_size"] == 1 << 30
    assert "optimization_level" not in torch_trt.compile_kwargs(request())


def test_version_mismatch_names_both_versions():
    assert torch_trt.version_mismatch("2.14.1+cu130", "2.14.0") is None
    message = torch_trt.version_mismatch("2.14.1", "2.11.0")
    assert "torch 2.14.1" in message and "torch-tensorrt 2.11.0" in message and "2.14.*" in message


def test_probe_when_not_installed(monkeypatch):
    monkeypatch.setattr(torch_trt.importlib.util, "find_spec", lambda name: None)
    assert "not installed" in torch_trt.probe("cuda")
    assert "CUDA only" in torch_trt.probe("cpu")


@pytest.mark.parametrize("error", [ImportError("libnvinfer.so.10: cannot open shared object file"),
                                   OSError("undefined symbol: _ZN3c10"),
                                   Exception("TensorRT version mismatch")])
def test_probe_catches_every_kind_of_import_failure(monkeypatch, error):
    class FailingFinder:
        def find_spec(self, name, path=None, target=None):
            if name == "torch_tensorrt":
                raise error
            return None
    monkeypatch.setattr(torch_trt.importlib.util, "find_spec", lambda name: object())
    monkeypatch.delitem(sys.modules, "torch_tensorrt", raising=False)
    monkeypatch.setattr(sys, "meta_path", [FailingFinder(), *sys.meta_path])
    monkeypatch.setenv("FMTBENCH_VERSION_OVERRIDES", "torch_tensorrt=2.11.0")
    reason = torch_trt.probe("cuda")
    assert reason.startswith(f"import torch_tensorrt failed: {type(error).__name__}")
    assert "install torch-tensorrt==" in reason  # the major.minor mismatch is said too


def test_load_without_tensorrt_is_unavailable_not_a_crash(monkeypatch, tmp_path):
    from fmtbench.backends.base import LoadRequest, Unavailable
    monkeypatch.setattr(torch_trt.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(Unavailable, match="not installed"):
        torch_trt.load(LoadRequest("fp16", "cuda", 224, (32,), tmp_path / "w.pt", tmp_path / "a.ep",
                                   torch_trt.SPEC.options))


@pytest.mark.tensorrt
def test_compile_save_load_benchmark_tiny(tmp_path):
    pytest.importorskip("torch_tensorrt")
    if not torch.cuda.is_available():
        pytest.skip("needs CUDA")
    from fmtbench import model
    from fmtbench.backends.base import LoadRequest
    weights = tmp_path / "w.pt"
    model.save(model.resolve("random"), weights)
    req = ExportRequest("fp16", "cuda", 64, (2, 4), torch_trt.SPEC.options, cache_dir=tmp_path / "cache")
    details = torch_trt.export(model.build(weights), req, tmp_path / "m.ep")
    assert details["round_trip"]
    session = torch_trt.load(LoadRequest("fp16", "cuda", 64, (2, 4), weights, tmp_path / "m.ep",
                                         torch_trt.SPEC.options))
    out = session.run(session.prepare(torch.randn(3, 3, 64, 64, device="cuda")))
    assert out.dtype == torch.float16 and out.shape == (3, 1000)
