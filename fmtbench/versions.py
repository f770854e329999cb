"""Library versions from package metadata (importing torch just to read its version costs ~2 s)."""
from __future__ import annotations

import os
from importlib import metadata

# A library name may be served by several distributions; the first installed one counts.
DISTRIBUTIONS = {
    "onnxruntime": ("onnxruntime-gpu", "onnxruntime"),
    "tensorrt": ("tensorrt", "tensorrt-cu13", "tensorrt-cu12"),
}
NOT_INSTALLED = "not-installed"


def _overrides() -> dict[str, str]:
    """FMTBENCH_VERSION_OVERRIDES="onnxruntime=9.9,torch=3.0" pretends versions (tests of reruns)."""
    pairs = [item.split("=", 1) for item in os.environ.get("FMTBENCH_VERSION_OVERRIDES", "").split(",") if "=" in item]
    return {name.strip(): version.strip() for name, version in pairs}


def version(library: str) -> str:
    override = _overrides().get(library)
    if override:
        return override
    for dist in DISTRIBUTIONS.get(library, (library,)):
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
    return NOT_INSTALLED


def versions(libraries) -> dict[str, str]:
    return {library: version(library) for library in libraries}
