from pathlib import Path

import onnx
import pytest
import torch
from onnx import numpy_helper

from fmtbench import backends, export, isolation, model
from fmtbench.atomic import read_json
from fmtbench.backends import onnx as onnx_backend
from fmtbench.backends import torchscript
from fmtbench.backends.base import LoadRequest
from fmtbench.workflow import plan

TESTS = str(Path(__file__).resolve().parent)


def _assert_matches_eager_at_an_unseen_batch_size(session, weights, atol=1e-4):
    batch = torch.randn(3, 3, 32, 32)  # exported for batches 2 and 4: the batch dimension must be dynamic
    logits = session.logits(session.run(session.prepare(batch)))
    with torch.no_grad():
        expected = model.build(weights)(batch)
    assert torch.allclose(logits, expected, atol=atol)


def _export(weights, tmp_path, fmt, precision, device="any", size="32", **options):
    artifact = tmp_path / f"{fmt}-{precision}.bin"
    provenance = export.run(fmt, precision, device, size, weights, [2, 4], {**plan.spec(fmt).options, **options},
                            artifact, tmp_path / f"{fmt}-{precision}.json")
    return artifact, provenance


def test_fp16_onnx_export_really_is_fp16(weights, tmp_path):
    artifact, provenance = _export(weights, tmp_path, "onnx", "fp16")
    assert provenance["status"] == "ok", provenance["reason"]
    saved = onnx.load(str(artifact))
    assert onnx_backend.float_initializer_types(saved) == {"FLOAT16"}
    assert provenance["details"]["float_initializer_types"] == ["FLOAT16"]
    assert provenance["details"]["opset"] >= 17
    assert provenance["details"]["input_shape"][0] == "batch"
    assert not list(tmp_path.glob("*.data")), "single file: no external data"
    assert not list(tmp_path.glob(".*part*")), "no temporary file left behind"


def test_precision_check_catches_a_model_that_is_secretly_fp32(weights, tmp_path):
    artifact, _ = _export(weights, tmp_path, "onnx", "fp32")
    saved = onnx.load(str(artifact))
    onnx_backend.check_precision(saved, "fp32")
    with pytest.raises(ValueError, match="FLOAT16"):
        onnx_backend.check_precision(saved, "fp16")
    # The seed study's bug: fp16 weights computed, but one (here: the first) initializer left fp32.
    first = saved.graph.initializer[0]
    saved.graph.initializer[0].CopyFrom(numpy_helper.from_array(numpy_helper.to_array(first), first.name))
    for init in saved.graph.initializer[1:]:
        if init.data_type == onnx.TensorProto.FLOAT:
            init.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(init).astype("float16"), init.name))
    with pytest.raises(ValueError, match="initializers of types"):
        onnx_backend.check_precision(saved, "fp16")


def test_onnx_fp32_runs_in_onnxruntime_and_matches_torch(weights, tmp_path):
    artifact, provenance = _export(weights, tmp_path, "onnx", "fp32")
    request = LoadRequest(precision="fp32", device="cpu", image_size=32, batch_sizes=(2, 4), state_dict=weights,
                          artifact=artifact, options=onnx_backend.SPEC.options, threads=1)
    session = onnx_backend.load(request)
    assert session.info["providers"] == ["CPUExecutionProvider"] and session.info["math"] == "fp32"
    _assert_matches_eager_at_an_unseen_batch_size(session, weights)


def test_a_ten_class_resnet18_exports_and_runs_with_its_own_head(tmp_path):
    """A fine-tuned checkpoint's head (10 classes) reaches the exports and ONNX Runtime's output binding."""
    from torchvision.models import resnet18
    torch.manual_seed(0)
    weights = tmp_path / "resnet18-10.pt"
    torch.save(resnet18(weights=None, num_classes=10).state_dict(), weights)
    artifact, provenance = _export(weights, tmp_path, "onnx", "fp32")
    assert provenance["status"] == "ok", provenance["reason"]
    request = LoadRequest(precision="fp32", device="cpu", image_size=32, batch_sizes=(2, 4), state_dict=weights,
                          artifact=artifact, options=onnx_backend.SPEC.options, threads=1)
    session = onnx_backend.load(request)
    assert session.classes == 10
    _assert_matches_eager_at_an_unseen_batch_size(session, weights)
    artifact, provenance = _export(weights, tmp_path, "torchscript", "fp32", device="cpu", size="any")
    assert provenance["status"] == "ok", provenance["reason"]
    assert torchscript.read(artifact)[0](torch.randn(1, 3, 32, 32)).shape == (1, 10)


def test_torchscript_export_on_cpu_is_frozen_and_exact(weights, tmp_path):
    artifact, provenance = _export(weights, tmp_path, "torchscript", "fp32", device="cpu", size="any")
    assert provenance["status"] == "ok", provenance["reason"]
    assert provenance["details"]["trace_max_abs_diff"] < 1e-4
    loaded, _ = torchscript.read(artifact)
    assert not [name for name, _ in loaded.named_parameters()], "frozen: parameters inlined as constants"


def test_export_that_cannot_run_here_says_why_at_once_without_a_compiler(weights, tmp_path, monkeypatch):
    def no_interpreter(*args, **kwargs):
        raise AssertionError("an unavailable export must not start a process")
    monkeypatch.setattr(export.isolation, "run_interpreter", no_interpreter)
    artifact, provenance = _export(weights, tmp_path, "torch_trt", "fp16", device="cuda", size="32")
    assert provenance["status"] == "unavailable"
    assert artifact.read_text().startswith(export.MARKER)
    assert read_json(tmp_path / "torch_trt-fp16.json")["reason"] == provenance["reason"]


def test_failed_export_is_data_not_a_crash(weights, tmp_path):
    artifact = tmp_path / "bad.onnx"
    provenance = export.run("onnx", "fp32", "any", "32", weights, [], dict(plan.spec("onnx").options),
                            artifact, tmp_path / "bad.json")
    assert provenance["status"] == "failed" and provenance["reason"]
    assert artifact.read_text().startswith(export.MARKER)


def test_one_classifier_for_both_stages_a_missing_library_is_unavailable():
    outcome = isolation.run_interpreter("helpers_isolated:missing_library", env={"PYTHONPATH": TESTS})
    assert (outcome.status, outcome.reason) == ("unavailable", "ModuleNotFoundError: No module named 'onnxscript'")
    forked = isolation.run_forked(__import__("helpers_isolated").missing_library, timeout=60)
    assert (forked.status, forked.reason) == (outcome.status, outcome.reason)


def test_a_crash_in_a_fresh_interpreter_names_the_signal_and_the_step():
    """How an AOTInductor loader that dies of SIGSEGV shows up: a failed export that says where."""
    outcome = isolation.run_interpreter("helpers_isolated:dies_during_load", env={"PYTHONPATH": TESTS})
    assert outcome.status == "failed"
    assert "SIGSEGV" in outcome.reason and "load (aoti_load_package)" in outcome.reason


def test_export_seconds_time_the_export_not_the_process_start(weights, tmp_path, monkeypatch):
    import time
    from types import SimpleNamespace

    def slow_export(_model, _request, _out):
        time.sleep(0.2)
        return {"method": "fake"}
    monkeypatch.setattr(export.backends, "get", lambda name: SimpleNamespace(export=slow_export))
    request = export.ExportRequest("fp32", "cpu", 32, (2,), {}, weights=weights)
    details, seconds = export.export_child("onnx", request, str(tmp_path / "out.onnx"), None)
    assert details == {"method": "fake"}
    assert 0.2 <= seconds < 2.0  # the sleep, not the interpreter's start or torch's import


def test_aotinductor_package_compiled_in_its_own_process_runs_any_batch_on_cpu(weights, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # inductor's cache goes to ./artifacts/cache: not into the checkout
    artifact = tmp_path / "inductor_aoti-fp32.pt2"
    options = dict(plan.spec("inductor_aoti").options)
    provenance = export.run("inductor_aoti", "fp32", "cpu", "32", weights, [2, 4], options, artifact,
                            tmp_path / "inductor_aoti-fp32.json")
    assert provenance["status"] == "ok", provenance["reason"]
    assert provenance["details"]["compile_seconds"] > 0
    request = LoadRequest(precision="fp32", device="cpu", image_size=32, batch_sizes=(2, 4), state_dict=weights,
                          artifact=artifact, options=options, threads=1)
    _assert_matches_eager_at_an_unseen_batch_size(backends.get("inductor_aoti").load(request), weights)


def test_torch_compile_export_warms_a_cache_the_benchmark_loads_instead_of_compiling(weights, tmp_path):
    artifact = tmp_path / "inductor-fp32.inductor"
    options = dict(plan.spec("inductor").options)
    provenance = export.run("inductor", "fp32", "cpu", "32", weights, [2, 4], options, artifact,
                            tmp_path / "inductor-fp32.json")
    assert provenance["status"] == "ok", provenance["reason"]
    details = provenance["details"]
    assert artifact.is_dir() and details["cold_cache"].get("fxgraph_cache_miss") == 1
    assert details["graphs_compiled"] == 1, "one dynamic-batch graph serves every batch size"
    assert details["warm_load"]["cache"] == {"fxgraph_cache_hit": 1}
    assert details["warm_load"]["seconds"] < details["compile_seconds"]
    request = LoadRequest(precision="fp32", device="cpu", image_size=32, batch_sizes=(2, 4), state_dict=weights,
                          artifact=artifact, options=options, threads=1)
    # A process of its own (this one has run torch: a fork of it could inherit a busy OpenMP pool).
    outcome = isolation.run_interpreter("helpers_isolated:load_inductor_from_cache", request,
                                        env={"PYTHONPATH": TESTS}, timeout=600)
    assert outcome.status == "ok", outcome.reason
    logits, counters = outcome.value
    assert counters.get("fxgraph_cache_hit") == 1 and not counters.get("fxgraph_cache_miss")
    with torch.no_grad():  # an unseen batch size, batch norms folded: equal up to rounding
        expected = model.build(weights)(torch.randn(3, 3, 32, 32, generator=torch.Generator().manual_seed(0)))
    assert torch.allclose(logits, expected, atol=1e-4)
