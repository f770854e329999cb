"""Inputs: a DataLoader over the image files (the real loader) and a seeded random tensor (dummy)."""
from __future__ import annotations

import math
from pathlib import Path

from fmtbench.atomic import read_json

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def image_paths(manifest_path: str | Path) -> list[str]:
    return [entry["path"] for entry in read_json(manifest_path)["images"]]


def resize_short_side(size: int) -> int:
    """ImageNet evaluation practice: resize the short side to size * 256/224, then centre-crop `size`."""
    return int(math.floor(size * 256 / 224))


def preprocess(image, size: int):
    """uint8 (3, H, W) -> uint8 (3, size, size); normalisation happens later, on the target device."""
    from torchvision.transforms.v2 import functional as F
    image = F.resize(image, resize_short_side(size), antialias=True)
    return F.center_crop(image, [size, size])


class ImageFiles:
    """Map-style dataset: decoded, resized, centre-cropped uint8 images (decoding runs in the workers)."""

    def __init__(self, paths: list[str], size: int):
        self.paths = list(paths)
        self.size = size

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int):
        from fmtbench.images import decode
        return preprocess(decode(self.paths[index]), self.size)


def _padded(paths: list[str], batch_size: int) -> list[str]:
    """At least one full batch, repeating images when the set is smaller than the batch."""
    return paths if len(paths) >= batch_size else (paths * math.ceil(batch_size / len(paths)))[:batch_size]


def _loader(dataset, batch_size: int, workers: int, **options):
    """Endless-epoch friendly: whole batches only, workers kept alive between epochs."""
    from torch.utils.data import DataLoader
    return DataLoader(dataset, batch_size=batch_size, shuffle=False, drop_last=True, num_workers=workers,
                      persistent_workers=workers > 0, prefetch_factor=4 if workers > 0 else None, **options)


def real_loader(paths: list[str], size: int, batch_size: int, workers: int, pin_memory: bool):
    return _loader(ImageFiles(_padded(paths, batch_size), size), batch_size, workers, pin_memory=pin_memory)


class FileBytes:
    """Map-style dataset of undecoded file contents (uint8 1-D tensors): decoding happens on the GPU."""

    def __init__(self, paths: list[str]):
        self.paths = list(paths)

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int):
        # Plain bytes, not tensors: a tensor per file would cross from the workers through a shared-memory
        # file descriptor each, and 12 workers exhausted them (EBADF, then a hang) on the H100 host.
        with open(self.paths[index], "rb") as handle:
            return self.paths[index], handle.read()


def _as_list(items):
    return items


def bytes_loader(paths: list[str], batch_size: int, workers: int):
    """Batches of (path, encoded bytes): workers only read files, the GPU decodes (nvJPEG)."""
    return _loader(FileBytes(_padded(paths, batch_size)), batch_size, workers, collate_fn=_as_list)


def decode_on_gpu(items, size: int, device: str = "cuda"):
    """JPEGs decoded by nvJPEG in one batched call, then resized and cropped on the GPU: uint8 NCHW."""
    import torch
    from torchvision.io import ImageReadMode, decode_image, decode_jpeg
    items = [(path, torch.frombuffer(bytearray(data), dtype=torch.uint8)) for path, data in items]
    jpegs = [data for path, data in items if path.lower().endswith((".jpg", ".jpeg"))]
    decoded = iter(decode_jpeg(jpegs, mode=ImageReadMode.RGB, device=device)) if jpegs else iter(())
    images = [next(decoded) if path.lower().endswith((".jpg", ".jpeg"))
              else decode_image(data, mode=ImageReadMode.RGB).to(device)  # PNG: nvJPEG cannot
              for path, data in items]
    return torch.stack([preprocess(image, size) for image in images])


def endless(loader):
    """Batches from `loader`, epoch after epoch."""
    while True:
        yield from loader


def normalise(batch_uint8, device: str):
    """uint8 NCHW (any device) -> float32 NCHW on `device`, ImageNet-normalised."""
    import torch
    batch = batch_uint8.to(device, non_blocking=True).float().div_(255)
    mean = torch.tensor(IMAGENET_MEAN, device=device).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=device).view(1, 3, 1, 1)
    return batch.sub_(mean).div_(std)


def dummy_batch(batch_size: int, size: int, device: str, seed: int = 0):
    import torch
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(batch_size, 3, size, size, generator=generator).to(device)


def fixed_batch(paths: list[str], size: int, count: int):
    """The first `count` images, normalised float32 on the CPU: the accuracy check's input."""
    import torch
    from fmtbench.images import decode
    chosen = [paths[i % len(paths)] for i in range(count)]
    return normalise(torch.stack([preprocess(decode(p), size) for p in chosen]), "cpu"), chosen
