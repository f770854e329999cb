import onnx
import pytest
import torch
from onnx import numpy_helper

from fmtbench import export, model, study
from fmtbench.atomic import read_json
from fmtbench.backends import onnx as onnx_backend
from fmtbench.backends.base import LoadRequest


def _assert_matches_eager_at_an_unseen_batch_size(session, weights):
    batch = torch.randn(3, 3, 32, 32)  # exported for batches 2 and 4: the batch dimension must be dynamic
    logits = session.logits(session.run(session.prepare(batch)))
    with torch.no_grad():
        expected = model.build(weights)(batch)
    assert torch.allclose(logits, expected, atol=1e-4)


def _export(weights, tmp_path, fmt, precision, device="any", size="32"):
    artifact = tmp_path / f"{fmt}-{precision}.bin"
    provenance = export.run(fmt, precision, device, size, weights, [2, 4],
                            dict(study.spec(fmt).options),
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
    assert session.info["providers"] == ["CPUExecutionProvider"]
    _assert_matches_eager_at_an_unseen_batch_size(session, weights)


def test_torchscript_export_on_cpu_is_frozen_and_exact(weights, tmp_path):
    artifact, provenance = _export(weights, tmp_path, "torchscript", "fp32", device="cpu", size="any")
    assert provenance["status"] == "ok", provenance["reason"]
    assert provenance["details"]["trace_max_abs_diff"] < 1e-4
    loaded = torch.jit.load(str(artifact))
    assert not [name for name, _ in loaded.named_parameters()], "frozen: parameters inlined as constants"


def test_export_that_cannot_run_here_writes_a_marker_and_says_why(weights, tmp_path):
    artifact, provenance = _export(weights, tmp_path, "torch_trt", "fp16", device="cuda", size="32")
    assert provenance["status"] == "unavailable"
    assert artifact.read_bytes().startswith(export.MARKER_PREFIX)
    assert read_json(tmp_path / "torch_trt-fp16.json")["reason"] == provenance["reason"]


def test_failed_export_is_data_not_a_crash(weights, tmp_path):
    artifact = tmp_path / "bad.onnx"
    provenance = export.run("onnx", "fp32", "any", "32", weights, [], dict(study.spec("onnx").options),
                            artifact, tmp_path / "bad.json")
    assert provenance["status"] == "failed" and provenance["reason"]
    assert artifact.read_bytes().startswith(export.MARKER_PREFIX)


def test_aotinductor_package_compiled_in_its_own_process_runs_any_batch_on_cpu(weights, tmp_path, monkeypatch):
    from fmtbench.backends import inductor
    monkeypatch.chdir(tmp_path)  # inductor's cache goes to ./artifacts/cache: not into the checkout
    options = {**inductor.SPEC.options, "max_autotune": False}  # autotuning is for the GPU: keep CI short
    artifact = tmp_path / "inductor-fp32.pt2"
    provenance = export.run("inductor", "fp32", "cpu", "32", weights, [2, 4], options, artifact,
                            tmp_path / "inductor-fp32.json")
    assert provenance["status"] == "ok", provenance["reason"]
    assert provenance["details"]["compile_seconds"] > 0
    request = LoadRequest(precision="fp32", device="cpu", image_size=32, batch_sizes=(2, 4), state_dict=weights,
                          artifact=artifact, options=options, threads=1)
    session = inductor.load(request)
    _assert_matches_eager_at_an_unseen_batch_size(session, weights)


def test_a_library_missing_in_the_export_process_makes_the_export_unavailable_not_failed(weights, tmp_path,
                                                                                          monkeypatch):
    import pickle

    def missing_library(_weights):
        raise ModuleNotFoundError("No module named 'onnxscript'")
    monkeypatch.setattr(export.model, "build", missing_library)
    request = tmp_path / "request.pkl"
    request.write_bytes(pickle.dumps(("onnx", None, str(weights), str(tmp_path / "out.onnx"), None)))
    export._export_child(str(request), str(tmp_path / "result.pkl"))
    status, reason = pickle.loads((tmp_path / "result.pkl").read_bytes())
    assert (status, reason) == ("unavailable", "ModuleNotFoundError: No module named 'onnxscript'")


def test_export_seconds_time_the_export_not_the_process_start(weights, tmp_path, monkeypatch):
    import pickle
    import time
    from types import SimpleNamespace

    def slow_export(_model, _request, _out):
        time.sleep(0.2)
        return {"method": "fake"}
    monkeypatch.setattr(export.importlib, "import_module", lambda name: SimpleNamespace(export=slow_export))
    request = tmp_path / "request.pkl"
    request.write_bytes(pickle.dumps(("onnx", None, str(weights), str(tmp_path / "out.onnx"), None)))
    export._export_child(str(request), str(tmp_path / "result.pkl"))
    status, (details, seconds) = pickle.loads((tmp_path / "result.pkl").read_bytes())
    assert status == "ok" and details == {"method": "fake"}
    assert 0.2 <= seconds < 2.0  # the sleep plus building the model
