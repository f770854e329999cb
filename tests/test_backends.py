"""The registry (fmtbench/backends/__init__.py): a backend module that breaks the contract is named by it."""
import pytest

from fmtbench import backends


def test_a_backend_module_without_a_spec_is_named_by_the_contract(monkeypatch):
    monkeypatch.setattr(backends, "_modules", lambda: {"nospec": "fmtbench.logs"})  # a module with no SPEC
    for cached in (backends.names, backends.get):
        cached.cache_clear()
    try:
        with pytest.raises(TypeError, match="fmtbench.logs does not fulfil the contract .*missing SPEC, probe, load"):
            backends.get("nospec")
    finally:
        monkeypatch.undo()
        for cached in (backends.names, backends.get):
            cached.cache_clear()


def test_ort_runs_on_the_stream_it_is_given_except_with_its_cuda_graphs():
    """The CUDA EP gets the measuring process's stream (so the harness's spin kernel is in front of ORT's kernels);
    with ORT's CUDA graphs it keeps its own stream and the backend makes none."""
    from fmtbench.backends import _ort_session, onnx
    options = dict(onnx.SPEC.options)
    given = _ort_session.cuda_provider_options(False, options, "fp16", stream=139_911)
    assert given["user_compute_stream"] == "139911"
    assert "user_compute_stream" not in _ort_session.cuda_provider_options(False, options, "fp16")
    assert _ort_session.compute_stream({**options, "enable_cuda_graph": True}) is None
