"""One module per deployment format; `base.py` is the contract, `get` the one way to reach a backend."""
from __future__ import annotations

import importlib
import importlib.util
import os
import pkgutil
from functools import cache
from pathlib import Path
from types import SimpleNamespace

from fmtbench.backends import base

REQUIRED = ("probe", "load")


class UnknownFormat(ValueError):
    pass


# Backend modules outside this package (config `backend_modules`): importable module paths, comma-separated.
# An environment variable, so that every process of a study sees them: Snakemake's jobs, the forked measuring
# processes and the fresh interpreter an export runs in (the Snakefile sets it from the config).
MODULES_ENV = "FMTBENCH_BACKEND_MODULES"


def use_modules(modules) -> None:
    """Adds backend modules from outside the package (each declares its format name in SPEC.name)."""
    os.environ[MODULES_ENV] = ",".join(modules)
    for cached in (_modules, names, get):
        cached.cache_clear()


@cache
def _modules() -> dict[str, str]:
    """format name -> module path, this package's modules and the configured ones."""
    found = {info.name: f"{__name__}.{info.name}" for info in pkgutil.iter_modules(__path__)
             if info.name != "base" and not info.name.startswith("_")}
    for path in filter(None, (item.strip() for item in os.environ.get(MODULES_ENV, "").split(","))):
        try:
            module = importlib.import_module(path)
        except ImportError as err:
            raise UnknownFormat(f"backend_modules: cannot import {path!r} ({err}); is its folder on PYTHONPATH?") \
                from None
        name = getattr(getattr(module, "SPEC", None), "name", None)
        if not name:
            raise TypeError(f"{path} does not fulfil the contract in fmtbench/backends/base.py: no SPEC.name")
        if name in found and found[name] != path:
            raise UnknownFormat(f"backend_modules: {path} declares format {name!r}, which {found[name]} already is")
        found[name] = path
    return found


@cache
def names() -> tuple[str, ...]:
    """Every backend: this package's modules (files starting with `_` are helpers, `base` the contract) and
    those of `backend_modules`."""
    return tuple(sorted(_modules()))


def module_name(name: str) -> str:
    """The import path of the backend's module."""
    return _modules()[name]


def source_file(name: str) -> Path:
    """The backend's module file (the DAG hashes its code, so that a change reruns that format)."""
    return Path(importlib.util.find_spec(module_name(name)).origin)


@cache
def get(name: str):
    """The backend `name` with the contract's defaults filled in: SPEC, probe, load, export, tune,
    input_format. Raises UnknownFormat for a name that is no module here."""
    if name not in names():
        raise UnknownFormat(f"unknown format {name!r}; known formats: {', '.join(names())}")
    module = importlib.import_module(_modules()[name])
    missing = [attr for attr in ("SPEC", *REQUIRED) if not hasattr(module, attr)]
    if hasattr(module, "SPEC") and module.SPEC.artifact is not None and not hasattr(module, "export"):
        missing.append("export")
    if missing:
        raise TypeError(f"{module.__name__} does not fulfil the contract in fmtbench/backends/base.py: "
                        f"missing {', '.join(missing)}")
    return SimpleNamespace(
        name=name, SPEC=module.SPEC, module=module, probe=module.probe, load=module.load,
        export=getattr(module, "export", None),
        tune=getattr(module, "tune", base.default_tune),
        input_format=getattr(module, "input_format", base.default_input_format),
        has_tune=hasattr(module, "tune"),
    )


def spec(name: str) -> base.FormatSpec:
    return get(name).SPEC


def all_libraries() -> tuple[str, ...]:
    """Every distribution any format declares (the environment record lists their versions)."""
    return tuple(sorted({library for name in names() for library in spec(name).libraries}))
