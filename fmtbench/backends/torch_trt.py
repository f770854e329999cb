"""Torch-TensorRT (dynamo IR): a TensorRT engine for a dynamic batch range, saved as an ExportedProgram.

fp16 is strong typing: the model and its inputs are converted with .half() (`enabled_precisions` is
rejected by torch-tensorrt 2.10-2.12 and ignored from 2.13, so it is never passed). fp32 disables TF32
unless `fp32_math: tf32`. One engine per (precision, image size) covers every configured batch size
(min = smallest, opt = largest, max = largest), built on the GPU that runs it: engines are not
portable across GPUs or TensorRT versions, so the export's params carry both.
"""
from __future__ import annotations

import importlib.util
import time
from pathlib import Path

from fmtbench import versions
from fmtbench.backends import _torchutil as tu
from fmtbench.backends.base import (
    ExportLayout,
    ExportRequest,
    FormatSpec,
    InputFormat,
    LoadRequest,
    Unavailable,
    math_of,
)

SPEC = FormatSpec(
    name="torch_trt",
    label="Torch-TensorRT",
    libraries=("torch", "torchvision", "torch_tensorrt", "tensorrt"),
    imports=("torch", "torchvision", "torch_tensorrt"),
    artifact=ExportLayout(ext="ep", per_image_size=True, per_device=True),
    devices=("cuda",),
    options={"fp32_math": "strict", "optimization_level": None, "workspace_size": 0},
    choices={"optimization_level": (None, 0, 1, 2, 3, 4, 5)},
    note=("One engine per precision and image size with a dynamic batch range (min = smallest, opt = max = largest "
          "configured batch), fp16 by `.half()` (strong typing), built on the GPU that runs it. Static engines per "
          "batch size were not compared with it."),
)
ROUND_TRIP_TOLERANCE = {"fp16": 1e-2, "fp32": 1e-4}


def _major_minor(version: str) -> str:
    return ".".join(version.split("+")[0].split(".")[:2])


def version_mismatch(torch_version: str, torch_tensorrt_version: str) -> str | None:
    if _major_minor(torch_version) != _major_minor(torch_tensorrt_version):
        return (f"torch {torch_version} with torch-tensorrt {torch_tensorrt_version}: torch-tensorrt "
                f"{_major_minor(torch_tensorrt_version)} is built for torch {_major_minor(torch_tensorrt_version)}.x; "
                f"install torch-tensorrt=={_major_minor(torch_version)}.*")
    return None


def probe(device: str = "cuda") -> str | None:
    """Why torch_tensorrt cannot be used here, or None. Importing it can fail in many ways."""
    if device != "cuda":
        return "Torch-TensorRT runs on CUDA only"
    if importlib.util.find_spec("torch_tensorrt") is None:
        return "torch_tensorrt is not installed (pip install -e '.[tensorrt]', see README)"
    mismatch = version_mismatch(versions.version("torch"), versions.version("torch_tensorrt"))
    try:
        import torch_tensorrt  # noqa: F401
    except (ImportError, OSError, Exception) as err:  # noqa: BLE001 - libnvinfer missing, ABI mismatch, ...
        return f"import torch_tensorrt failed: {type(err).__name__}: {err}" + (f" ({mismatch})" if mismatch else "")
    return mismatch


def input_format(request: LoadRequest) -> InputFormat:
    return InputFormat(dtype="float16" if request.precision == "fp16" else "float32", channels_last=False)


def _require() -> None:
    reason = probe("cuda")
    if reason:
        raise Unavailable(reason)
    tu.require_device("cuda")


def shape_range(image_size: int, batch_sizes) -> dict:
    """Dynamic batch spanning the configured sizes, optimised for the largest."""
    smallest, largest = min(batch_sizes), max(batch_sizes)
    return {"min_shape": (smallest, 3, image_size, image_size),
            "opt_shape": (largest, 3, image_size, image_size),
            "max_shape": (largest, 3, image_size, image_size)}


def compile_kwargs(request: ExportRequest) -> dict:
    """Arguments of torch_tensorrt.compile for one export request (no TensorRT needed to build them)."""
    import torch_tensorrt
    kwargs = {
        "ir": "dynamo",
        "inputs": [torch_tensorrt.Input(**shape_range(request.image_size, request.batch_sizes),
                                        dtype=tu.dtype(request.precision))],
        "disable_tf32": not (request.precision == "fp32" and request.options["fp32_math"] == "tf32"),
        "timing_cache_path": str(Path(request.cache_dir) / "tensorrt" / "timing_cache.bin"),
    }
    if request.options["optimization_level"] is not None:
        kwargs["optimization_level"] = request.options["optimization_level"]
    if request.options["workspace_size"]:
        kwargs["workspace_size"] = request.options["workspace_size"]
    return kwargs


def _example(request: ExportRequest, batch: int):
    import torch
    return torch.randn(batch, 3, request.image_size, request.image_size, device="cuda").to(tu.dtype(request.precision))


def export(model, request: ExportRequest, out) -> dict:
    import torch
    _require()
    import tensorrt
    import torch_tensorrt
    kwargs = compile_kwargs(request)
    Path(kwargs["timing_cache_path"]).parent.mkdir(parents=True, exist_ok=True)
    module = model.to(device="cuda", dtype=tu.dtype(request.precision))  # .half() for fp16: strong typing
    start = time.perf_counter()
    compiled = torch_tensorrt.compile(module, **kwargs)
    build_seconds = time.perf_counter() - start
    torch_tensorrt.save(compiled, str(out), output_format="exported_program", arg_inputs=kwargs["inputs"])
    loaded = torch.export.load(str(out)).module()
    checks = {}
    for batch in (min(request.batch_sizes), max(request.batch_sizes)):
        example = _example(request, batch)
        with torch.no_grad():
            expected, got = compiled(example), loaded(example)
        if got.dtype != tu.dtype(request.precision):
            raise ValueError(f"engine output is {got.dtype}, expected {tu.dtype(request.precision)}")
        difference = float((expected.float() - got.float()).abs().max())
        if difference > ROUND_TRIP_TOLERANCE[request.precision]:
            raise ValueError(f"saved program differs from the compiled one by {difference:.3g} at batch {batch}")
        checks[f"batch_{batch}_max_abs_diff"] = difference
    properties = torch.cuda.get_device_properties(0)
    return {"method": "torch_tensorrt.compile(ir='dynamo') + torch_tensorrt.save(output_format='exported_program')",
            "build_seconds": round(build_seconds, 3),
            "shape_range": shape_range(request.image_size, request.batch_sizes),
            "disable_tf32": kwargs["disable_tf32"], "timing_cache": kwargs["timing_cache_path"],
            "round_trip": checks, "tensorrt": tensorrt.__version__, "torch_tensorrt": torch_tensorrt.__version__,
            "gpu_name": properties.name, "compute_capability": f"{properties.major}.{properties.minor}"}


def load(request: LoadRequest):
    import torch
    _require()
    import torch_tensorrt  # noqa: F401  (registers the TensorRT engine class before loading)
    module = torch.export.load(str(request.artifact)).module()
    math = math_of(request.precision, request.options["fp32_math"])
    return tu.TorchModuleSession(module, request.precision, "cuda", {"math": math, "engine": "TensorRT"},
                                 input_memory_format=torch.contiguous_format)
