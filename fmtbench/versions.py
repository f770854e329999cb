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
    """The installed version; where several distributions serve the library (onnxruntime-gpu and
    onnxruntime), every installed one, so that upgrading either changes the string."""
    override = _overrides().get(library)
    if override:
        return override
    found = []
    for dist in DISTRIBUTIONS.get(library, (library,)):
        try:
            found.append((dist, metadata.version(dist)))
        except metadata.PackageNotFoundError:
            continue
    if not found:
        return NOT_INSTALLED
    if len(found) == 1:
        return found[0][1]
    return "; ".join(f"{dist} {number}" for dist, number in found)


def versions(libraries) -> dict[str, str]:
    return {library: version(library) for library in libraries}
