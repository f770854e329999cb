"""Whether a configuration can fit before it is measured: ResNet-18's memory at its batch size, image size and
precision against what its device has free now.

The estimate is the weights (the fp32 state dict the measuring process loads, and the model in the row's precision)
and the activations at the widest point of the forward pass: the stem's input (3 channels at the image size), its
convolution's output and its batch norm's (64 channels each at half the size, 16 values per input pixel each), alive
together in eager PyTorch: 35 values per input pixel per image. Formats that fold the batch norm into the convolution
(ONNX Runtime, frozen TorchScript) hold less there; the estimate is no bound, and a configuration it lets through may
still run out of memory (then the library says so and the row is `oom` all the same). What is free: the memory the
kernel says it can give without swapping (psutil's `available`) for CPU rows; the GPU's free memory through NVML for
CUDA rows (the job process never initialises CUDA: its measuring processes are forked from it). Where the free figure
cannot be read, nothing is refused.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

from fmtbench.workflow import gpus

RESNET18_PARAMETERS = 11_689_512
WIDEST_VALUES_PER_PIXEL = 3 + 16 + 16  # the stem's input, its convolution's output and its batch norm's
BYTES = {"fp32": 4, "fp16": 2}
MB = 1024 * 1024


@dataclass(frozen=True)
class Estimate:
    weights: int
    activations: int

    @property
    def total(self) -> int:
        return self.weights + self.activations


def estimate(batch: int, image_size: int, precision: str) -> Estimate:
    """What a configuration needs, in bytes."""
    value = BYTES[precision]
    return Estimate(weights=RESNET18_PARAMETERS * (BYTES["fp32"] + value),
                    activations=batch * image_size * image_size * WIDEST_VALUES_PER_PIXEL * value)


def free_bytes(device: str) -> int | None:
    """What `device` has free now, or None where it cannot be read (no NVML)."""
    if device == "cpu":
        import psutil
        return int(psutil.virtual_memory().available)
    visible = os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",")[0].strip()  # the GPU the job claimed
    uuid = visible if visible.startswith(("GPU-", "MIG-")) else None
    nvml = gpus.Nvml.open(uuid=uuid, index=int(visible) if visible.isdigit() else None)
    try:
        return nvml.memory_free() if nvml is not None else None
    except Exception:  # noqa: BLE001 - NVML answered the handle but not the memory: nothing is refused
        return None


def _size(count: int) -> str:
    return f"{count / 1024**3:.1f} GB" if count >= 1024**3 else f"{count / MB:.0f} MB"


def refusal(device: str, batch: int, image_size: int, precision: str, free: int | None) -> str | None:
    """Why a configuration is not measured (its estimate exceeds what is free), or None."""
    need = estimate(batch, image_size, precision)
    if free is None or need.total <= free:
        return None
    where = "this machine has available" if device == "cpu" else "the GPU has free"
    return (f"estimated to need {_size(need.total)} (weights {_size(need.weights)}, activations at batch {batch}, "
            f"{image_size}×{image_size}, {precision}: {_size(need.activations)}), more than the {_size(free)} {where}: "
            "not measured")
