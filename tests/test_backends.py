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
