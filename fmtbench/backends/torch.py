"""PyTorch eager: the state dict in a torchvision ResNet-18 (fp16 via .half() + channels_last on CUDA)."""
from __future__ import annotations

from fmtbench.backends import _torchutil as tu
from fmtbench.backends.base import FormatSpec, LoadRequest

SPEC = FormatSpec(
    name="torch",
    label="PyTorch eager",
    libraries=("torch", "torchvision"),
    options={"fp32_math": "strict"},
)


def probe(device: str) -> str | None:
    return None


def load(request: LoadRequest):
    tu.require_device(request.device)
    math = tu.configure_cuda_math(request.precision, request.options["fp32_math"]) \
        if request.device == "cuda" else request.precision
    module = tu.eval_model(request.state_dict, request.precision, request.device)
    return tu.TorchModuleSession(module, request.precision, request.device, {"math": math})
