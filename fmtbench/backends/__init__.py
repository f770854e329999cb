"""One module per deployment format; `base.py` is the contract, `get` the one way to reach a backend."""
from __future__ import annotations

import importlib
import pkgutil
from functools import cache
from types import SimpleNamespace

from fmtbench.backends import base

REQUIRED = ("probe", "load")


class UnknownFormat(ValueError):
    pass


@cache
def names() -> tuple[str, ...]:
    """Every backend module of this package (files starting with `_` are helpers, `base` the contract)."""
    return tuple(sorted(info.name for info in pkgutil.iter_modules(__path__)
                        if info.name != "base" and not info.name.startswith("_")))


@cache
def get(name: str):
    """The backend `name` with the contract's defaults filled in: SPEC, probe, load, export, tune,
    input_format. Raises UnknownFormat for a name that is no module here."""
    if name not in names():
        raise UnknownFormat(f"unknown format {name!r}; known formats: {', '.join(names())}")
    module = importlib.import_module(f"{__name__}.{name}")
    missing = [attr for attr in ("SPEC", *REQUIRED) if not hasattr(module, attr)]
    if module.SPEC.artifact is not None and not hasattr(module, "export"):
        missing.append("export")
    if missing:
        raise TypeError(f"fmtbench.backends.{name} does not fulfil the contract in base.py: "
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
