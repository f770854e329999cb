"""What a batch source is asked for and gives: the input format a session takes, the request, the `Source`
protocol every loader's source follows, and the ImageNet preprocessing they share."""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from fmtbench.atomic import read_json

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class InputFormat:
    """The tensor a session's `prepare` takes without a copy: dtype name and memory layout."""
    dtype: str = "float32"          # "float16" | "float32"
    channels_last: bool = False


@dataclass(frozen=True)
class SourceRequest:
    device: str
    image_size: int
    batch_size: int
    workers: int
    manifest: str | None
    input_format: InputFormat = InputFormat()
    seed: int = 0
    feeds: object | None = None  # the process's running workers; None: the source starts and stops its own


class Source(Protocol):
    """A configuration's batch source. Made before the configuration's memory baseline (a dummy batch: the input,
    not counted), started after it (`start`: its own workers, decoder threads and queues count in its figure)."""

    def start(self) -> None:
        """Starts what produces the batches (after the configuration's baseline)."""

    def next(self):
        """The next batch: a normalised tensor on the device, in the session's input format."""

    def start_timing(self) -> None:
        """The timed phase begins: statistics count from here."""

    def buffered_batches(self) -> int:
        """Batches the source holds ready when its producers are ahead (its queues' capacity): a timed phase that
        starts with them full is not in steady state until they have been taken."""

    def stats(self) -> dict | None:
        """What the source recorded over the timed phase (row_parts.LoaderStats' fields), or None."""

    def close(self) -> None:
        """Stops what `start` started; the process's shared workers stay."""


def image_paths(manifest_path: str | Path) -> list[str]:
    return [entry["path"] for entry in read_json(manifest_path)["images"]]


def resize_short_side(size: int) -> int:
    """ImageNet evaluation practice: resize the short side to size * 256/224, then centre-crop `size`."""
    return int(math.floor(size * 256 / 224))


def preprocess(image, size: int):
    """uint8 (..., 3, H, W) -> uint8 (..., 3, size, size) on the image's device."""
    from torchvision.transforms.v2 import functional as F
    image = F.resize(image, resize_short_side(size), antialias=True)
    return F.center_crop(image, [size, size])

def in_format(tensor, input_format: InputFormat, device: str | None = None):
    """`tensor` (float NCHW) in the format's input dtype and memory layout, on `device` if given."""
    import torch
    return tensor.to(device=device, dtype=getattr(torch, input_format.dtype),
                     memory_format=torch.channels_last if input_format.channels_last else torch.contiguous_format)


class Normaliser:
    """uint8 NCHW (any device) -> ImageNet-normalised tensor on `device` in the input format."""

    def __init__(self, device: str, input_format: InputFormat):
        import torch
        self.device, self.input_format = device, input_format
        self.scale = (1 / (255 * torch.tensor(IMAGENET_STD, device=device))).view(1, 3, 1, 1)
        self.shift = (torch.tensor(IMAGENET_MEAN, device=device) / torch.tensor(IMAGENET_STD, device=device)
                      ).view(1, 3, 1, 1)

    def __call__(self, batch_uint8):
        batch = batch_uint8.to(self.device, non_blocking=True).float().mul_(self.scale).sub_(self.shift)
        return in_format(batch, self.input_format)


def normalise(batch_uint8, device: str):
    """uint8 NCHW -> float32 NCHW on `device`, ImageNet-normalised."""
    return Normaliser(device, InputFormat())(batch_uint8)


# --- batch sources ------------------------------------------------------------------------------------
