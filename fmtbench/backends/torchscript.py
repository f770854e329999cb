"""TorchScript: torch.jit.trace + torch.jit.freeze of the model in its precision, traced on its device."""
from __future__ import annotations

import warnings

from fmtbench.backends import _torchutil as tu
from fmtbench.backends.base import ExportLayout, ExportRequest, FormatSpec, LoadRequest

SPEC = FormatSpec(
    name="torchscript",
    label="TorchScript",
    libraries=("torch", "torchvision"),
    # Frozen constants live on the tracing device, in its memory format; the graph is shape-generic.
    artifact=ExportLayout(ext="ts", per_device=True),
    options={"fp32_math": "strict", "optimize_for_inference": True},
)
input_format = tu.input_format


def probe(device: str) -> str | None:
    return None


def export(model, request: ExportRequest, out) -> dict:
    import torch
    tu.require_device(request.device)
    module = model.to(device=request.device, dtype=tu.dtype(request.precision),
                      memory_format=tu.memory_format(request.device, request.precision))
    example = torch.randn(min(request.batch_sizes), 3, 224, 224, device=request.device).to(
        dtype=tu.dtype(request.precision), memory_format=tu.memory_format(request.device, request.precision))
    with torch.inference_mode(False), torch.no_grad():
        frozen = torch.jit.freeze(torch.jit.trace(module, example).eval())
        expected, got = module(example), frozen(example)
    torch.jit.save(frozen, str(out))
    return {"method": "torch.jit.trace + torch.jit.freeze",
            "trace_max_abs_diff": float((expected.float() - got.float()).abs().max())}


def read(path, device: str = "cpu"):
    """(module, deprecation note or None): torch.jit.load with its warnings caught, not printed. Newer torch
    deprecates TorchScript (a FutureWarning pointing to torch.export); the row records it, the format is
    still what is measured."""
    import torch
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        module = torch.jit.load(str(path), map_location=device)
    notes = [str(w.message) for w in caught if issubclass(w.category, (FutureWarning, DeprecationWarning))]
    return module, (notes[0] if notes else None)


def load(request: LoadRequest):
    import torch
    tu.require_device(request.device)
    math = tu.configure_cuda_math(request.precision, request.options["fp32_math"]) \
        if request.device == "cuda" else request.precision
    module, deprecated = read(request.artifact, request.device)
    info = {"math": math, "optimize_for_inference": False, "deprecated": deprecated}
    if request.options["optimize_for_inference"]:
        try:
            module = torch.jit.optimize_for_inference(module)
            info["optimize_for_inference"] = True
        except Exception as err:  # some builds reject some passes; the frozen module still stands
            info["optimize_for_inference_error"] = f"{type(err).__name__}: {err}"[:300]
    return tu.TorchModuleSession(module, request.precision, request.device, info)
