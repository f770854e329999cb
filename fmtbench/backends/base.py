"""The interface every format implements, one module per format in this package.

A backend module defines, at module level and without importing torch:
    SPEC: FormatSpec
and these functions (heavy imports inside them):
    probe(device) -> str | None        why the format cannot run here, or None
    export(model, request, out) -> dict  write the artifact; extra provenance (omit if SPEC.export_ext is None)
    load(request) -> Session           a ready-to-run model
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Protocol


@dataclass(frozen=True)
class FormatSpec:
    name: str
    label: str
    # Distributions whose versions, when they change, invalidate this format's exports and results.
    libraries: tuple[str, ...]
    # Extension of the export artifact; None when the format runs from the state dict.
    export_ext: str | None = None
    export_per_image_size: bool = False
    export_per_device: bool = False
    devices: tuple[str, ...] = ("cpu", "cuda")
    # Per-format settings (config.yaml `options.<format>`) with their defaults.
    options: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class LoadRequest:
    """What a backend needs to build a session for one (precision, device, image size)."""
    precision: str
    device: str
    image_size: int
    batch_sizes: tuple[int, ...]
    state_dict: Path
    artifact: Path | None
    options: Mapping[str, Any]
    threads: int | None = None


@dataclass(frozen=True)
class ExportRequest:
    precision: str
    device: str          # "any" when the artifact is device-independent
    image_size: int | None  # None when the artifact is shape-independent
    batch_sizes: tuple[int, ...]
    options: Mapping[str, Any]
    cache_dir: Path = Path("artifacts/cache")  # persistent compiler caches (TensorRT timing, inductor)


class Session(Protocol):
    """A loaded model. `prepare` is outside the model timer, `run` is what is timed."""

    info: dict  # the settings really in effect (providers, memory format, threads, ...)

    def prepare(self, batch: Any) -> Any:
        """Turn a normalised float32 NCHW tensor on the target device into this format's input."""

    def run(self, inputs: Any) -> Any:
        """One forward pass; may return before the device has finished (the clock synchronises)."""

    def logits(self, output: Any) -> Any:
        """The output of `run` as a float32 CPU torch tensor."""
