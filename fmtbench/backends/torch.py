"""PyTorch eager: the state dict in a torchvision ResNet-18.

CUDA fp16 is a .half() model in channels_last with channels_last inputs; fp32 is strict (TF32 off) unless
`fp32_math: tf32`. Variants: `cuda_graph` replays a captured CUDA graph per input shape (no launch
overhead); `autocast` keeps fp32 weights and runs under torch.autocast(float16) (the seed's way, labelled).
"""
from __future__ import annotations

from fmtbench.backends import _torchutil as tu
from fmtbench.backends.base import FormatSpec, InputFormat, LoadRequest

SPEC = FormatSpec(
    name="torch",
    label="PyTorch eager",
    libraries=("torch", "torchvision"),
    options={"fp32_math": "strict", "cuda_graph": False, "autocast": False},
    library_defaults={"fp32_math": "tf32", "cuda_graph": False, "autocast": False},
)


def probe(device: str) -> str | None:
    return None


def input_format(request: LoadRequest) -> InputFormat:
    if request.options["autocast"]:
        return InputFormat(dtype="float32", channels_last=True)
    return tu.input_format(request)


class AutocastSession(tu.TorchModuleSession):
    def run(self, inputs):
        import torch
        with torch.inference_mode(), torch.autocast("cuda", dtype=torch.float16):
            return self.module(inputs)


def load(request: LoadRequest):
    tu.require_device(request.device)
    options = request.options
    if options["autocast"]:
        if request.device != "cuda" or request.precision != "fp16":
            raise ValueError("the autocast variant is fp16 on CUDA")
        tu.configure_cuda_math("fp32", options["fp32_math"])
        import torch
        module = tu.eval_model(request.state_dict, "fp32", "cuda").to(memory_format=torch.channels_last)
        session = AutocastSession(module, "fp32", "cuda", {"math": "fp16_autocast"},
                                  input_memory_format=torch.channels_last)
    else:
        math = tu.configure_cuda_math(request.precision, options["fp32_math"]) \
            if request.device == "cuda" else request.precision
        module = tu.eval_model(request.state_dict, request.precision, request.device)
        session = tu.TorchModuleSession(module, request.precision, request.device, {"math": math})
    if options["cuda_graph"]:
        if request.device != "cuda":
            raise ValueError("cuda_graph needs device cuda")
        return tu.CudaGraphSession(session)
    return session
