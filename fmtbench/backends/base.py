"""The contract every format implements: one module per format in this package, plus config.

A backend module defines, at module level and without importing heavy libraries:

    SPEC: FormatSpec                      what the format declares (libraries, artifact, devices, options)

and these functions (heavy imports inside them):

    probe(device) -> str | None           why the format cannot run on `device` here, or None. Cheap: it may
                                          look for libraries but must not initialise CUDA (it runs in the
                                          Snakemake process and in the job process before any child forks).
    export(model, request, out) -> dict   only when SPEC.artifact is set: write the artifact at `out` (a file,
                                          or a directory for SPEC.artifact.kind == "directory"); returns
                                          details for the provenance.
    load(request) -> Session              a ready-to-run model.

and may define (`fmtbench.backends.get` fills in the defaults below):

    tune(request) -> dict                 settings measured once per job, in a process of its own, merged
                                          into the options every configuration of the job loads with.
    input_format(request) -> InputFormat  the dtype and layout `Session.prepare` wants; inputs are made in it
                                          before the memory baseline, so no harness staging is measured.

A backend that cannot run here raises `Unavailable` (from `isolation`, which classifies failures; named here
as the contract's word). `InputFormat` belongs to the data module, which makes inputs in it.

Everything else (which libraries to import before forking, which versions invalidate results, where the
artifact goes, how a failure is classified) is derived from SPEC by the rest of the package.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from fmtbench import paths
from fmtbench.data import InputFormat
from fmtbench.isolation import Unavailable  # noqa: F401 - what a backend raises when it cannot run here

PRECISIONS = ("fp16", "fp32")
DEVICES = ("cpu", "cuda")


@dataclass(frozen=True)
class ExportLayout:
    """What the export stage writes for a format: one file, or a directory (several files, a cache)."""
    ext: str
    kind: str = "file"              # "file" | "directory"
    per_image_size: bool = False    # one artifact per image size (shape-specialised)
    per_device: bool = False        # one artifact per device (frozen constants, engines, compiled kernels)


@dataclass(frozen=True)
class FormatSpec:
    name: str
    label: str
    # Distributions whose versions, when they change, invalidate this format's exports and results.
    libraries: tuple[str, ...]
    # Modules the job process imports before forking its measuring children (they inherit them).
    imports: tuple[str, ...] = ("torch", "torchvision")
    artifact: ExportLayout | None = None
    devices: tuple[str, ...] = DEVICES
    precisions: tuple[str, ...] = PRECISIONS
    # Per-format settings (config.yaml `options.<format>`, variants' `options`) with their defaults.
    options: Mapping[str, Any] = field(default_factory=dict)
    # The values an option may take where they are a list (else: the default's type; None admits any).
    choices: Mapping[str, tuple] = field(default_factory=dict)
    # Lower-case fragments of an exception's text that mean the device ran out of memory, besides the
    # generic ones (isolation.OOM_MARKERS).
    oom_markers: tuple[str, ...] = ()
    # The options that reproduce the library's own out-of-the-box behaviour (the report marks such rows), e.g.
    # PyTorch and ONNX Runtime compute fp32 convolutions in TF32 by default on Ampere and later.
    library_defaults: Mapping[str, Any] = field(default_factory=dict)
    # What a reader of the report must know about this format's figures (one paragraph, no numbers: figures
    # come from the rows).
    note: str | None = None


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
    device: str             # the device the artifact is built on ("cpu" for device-independent artifacts)
    image_size: int | None  # None when the artifact is shape-independent
    batch_sizes: tuple[int, ...]
    options: Mapping[str, Any]
    cache_dir: Path = Path(paths.CACHE)  # persistent compiler caches shared across exports (TensorRT)
    weights: Path | None = None                 # the state dict the model was built from


# What a session's convolutions compute in, recorded as `Session.info["math"]`: one of these keys, with the one
# label every table, plot and finding uses (math_label).
MATH = {
    "fp16": "fp16",
    "fp16_autocast": "fp16 (autocast, fp32 weights)",
    "tf32": "fp32 with TF32",
    "fp32": "strict fp32 (TF32 off)",
}


def math_of(precision: str, fp32_math: str = "strict", autocast: bool = False) -> str:
    """The MATH key of a configuration."""
    if precision == "fp16":
        return "fp16_autocast" if autocast else "fp16"
    return "tf32" if fp32_math == "tf32" else "fp32"


def math_label(math: str | None, device: str = "cuda", precision: str | None = None) -> str:
    """The label of a MATH key; plain "fp32" on the CPU (TF32 is a GPU tensor-core mode)."""
    if math not in MATH:
        return precision or "?"
    if device == "cpu" and math == "fp32":
        return "fp32"
    return MATH[math]


class Session(Protocol):
    """A loaded model. `prepare` is outside the model timer, `run` is what is timed; `release(next_batch_size)`
    (optional) gives back what serving one configuration left (CUDA graphs, arenas) before the next one, which
    runs `next_batch_size` (None: none follows), is measured."""

    info: dict  # the settings really in effect (providers, memory format, math (a MATH key), threads, ...)

    def prepare(self, batch: Any) -> Any:
        """Turn a normalised NCHW tensor on the target device (ideally already in `input_format`) into
        this format's input."""

    def run(self, inputs: Any) -> Any:
        """One forward pass; may return before the device has finished (the clock synchronises)."""

    def logits(self, output: Any) -> Any:
        """The output of `run` as a float32 CPU torch tensor."""


# Choices of options that several formats share.
COMMON_CHOICES = {"fp32_math": ("strict", "tf32")}


def option_problem(spec: FormatSpec, key: str, value) -> str | None:
    """Why `value` cannot be option `key` of this format, or None."""
    allowed = spec.choices.get(key, COMMON_CHOICES.get(key))
    if allowed is not None:
        if any(type(value) is type(choice) and value == choice for choice in allowed):
            return None
        return f"{value!r} is not one of {', '.join(repr(choice) for choice in allowed)}"
    default = spec.options[key]
    if default is None or type(value) is type(default) or (type(default) is float and type(value) is int):
        return None
    return f"{value!r} is a {type(value).__name__}, the option takes a {type(default).__name__} (default {default!r})"


# --- defaults for the optional functions --------------------------------------------------------------

def default_tune(request: LoadRequest) -> dict:
    return {}


def default_input_format(request: LoadRequest) -> InputFormat:
    return InputFormat(dtype="float16" if request.precision == "fp16" else "float32")
