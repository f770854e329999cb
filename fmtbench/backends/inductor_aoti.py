"""AOTInductor: torch.compile's compiler ahead of time, one package (.pt2) per precision and image size.

The variant of `inductor` for stacks where a package loads: the fp16 model is .half() in channels_last,
exported with a dynamic batch dimension and compiled once in the export stage (compile time in the
provenance); the benchmark loads the package with torch._inductor.aoti_load_package. The export process
also loads the package and runs it, each step marked, so a loader that crashes (SIGSEGV on torch
2.11.0+cu130 / H100, 2026-11-23) makes a `failed` export naming the step, not a crashed study.
"""
from __future__ import annotations

import os
import time
from pathlib import Path

from fmtbench import isolation
from fmtbench.backends import _torchutil as tu
from fmtbench.backends.base import ExportLayout, ExportRequest, FormatSpec, LoadRequest

SPEC = FormatSpec(
    name="inductor_aoti",
    label="AOTInductor package",
    libraries=("torch", "torchvision", "triton"),
    artifact=ExportLayout(ext="pt2", per_image_size=True, per_device=True),
    # Convolutions autotuned over ATen (cuDNN) only when max_autotune is on: Triton's conv templates cost
    # ~9 s of autotuning per layer on the H100 and lost to cuDNN where we looked.
    options={"max_autotune": False, "conv_backends": "ATEN", "fp32_math": "strict"},
)
input_format = tu.input_format


def probe(device: str) -> str | None:
    return None


def inductor_configs(options: dict) -> dict:
    return {"max_autotune": bool(options["max_autotune"]), "max_autotune_conv_backends": options["conv_backends"]}


def export(model, request: ExportRequest, out) -> dict:
    import torch
    tu.require_device(request.device)
    os.environ["TORCHINDUCTOR_CACHE_DIR"] = str(Path(request.cache_dir, "inductor_aoti").resolve())
    if request.device == "cuda":
        tu.configure_cuda_math(request.precision, request.options["fp32_math"])
    dtype, memory_format = tu.dtype(request.precision), tu.memory_format(request.device, request.precision)
    module = model.to(device=request.device, dtype=dtype, memory_format=memory_format)
    size, largest = request.image_size, max(request.batch_sizes)
    example = torch.randn(largest, 3, size, size, device=request.device).to(dtype=dtype, memory_format=memory_format)
    batch = torch.export.Dim("batch", min=1, max=max(largest, 2))
    isolation.mark("compile")
    start = time.perf_counter()
    with torch.no_grad():
        program = torch.export.export(module, (example,), dynamic_shapes=({0: batch},))
        torch._inductor.aoti_compile_and_package(program, package_path=str(out),
                                                 inductor_configs=inductor_configs(request.options))
    compile_seconds = time.perf_counter() - start
    isolation.mark("load (aoti_load_package)")
    compiled = torch._inductor.aoti_load_package(str(out))
    isolation.mark("run the loaded package")
    with torch.no_grad():
        difference = float((compiled(example).float() - module(example).float()).abs().max())
    return {"method": "torch.export (dynamic batch) + torch._inductor.aoti_compile_and_package",
            "inductor_configs": inductor_configs(request.options), "compile_seconds": round(compile_seconds, 3),
            "max_abs_diff_vs_eager": difference}


def load(request: LoadRequest):
    import torch
    tu.require_device(request.device)
    if request.device == "cuda":
        math = tu.configure_cuda_math(request.precision, request.options["fp32_math"])
    else:
        math = request.precision
    module = torch._inductor.aoti_load_package(str(request.artifact))
    return tu.TorchModuleSession(module, request.precision, request.device, {"math": math, "aoti": True})
