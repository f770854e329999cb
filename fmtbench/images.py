"""The image set: a user's folder of JPEG/PNG files, or a deterministic set made from packaged photographs."""
from __future__ import annotations

import logging
import os
from pathlib import Path

from fmtbench.atomic import sha256_file

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png"}
# Photographs (not drawings) that matplotlib ships in mpl-data/sample_data.
KNOWN_PHOTOGRAPHS = ("grace_hopper.jpg", "Minduka_Present_Blue_Pack.png")
PHOTO_SIZE = (375, 500)      # height, width: a typical 4:3 photo
JPEG_QUALITY = 90


class ImageError(ValueError):
    """An image that cannot be used; the message names the file."""


def packaged_photographs() -> list[Path]:
    import matplotlib
    sample_data = Path(matplotlib.get_data_path()) / "sample_data"
    photos = [sample_data / name for name in KNOWN_PHOTOGRAPHS if (sample_data / name).is_file()]
    if not photos:
        raise ImageError(f"{sample_data}: none of the packaged photographs {KNOWN_PHOTOGRAPHS} is installed; "
                         "set data.images to a folder of JPEG/PNG files")
    return photos


def decode(path: str | os.PathLike):
    """uint8 RGB tensor (3, H, W); ImageError naming the file if it cannot be decoded."""
    from torchvision.io import ImageReadMode, decode_image, read_file
    try:
        return decode_image(read_file(str(path)), mode=ImageReadMode.RGB)
    except Exception as err:  # torchvision raises RuntimeError/ValueError depending on the decoder
        raise ImageError(f"{path}: unreadable image ({err})") from err


def find_images(folder: str | os.PathLike) -> list[Path]:
    folder = Path(folder)
    if not folder.is_dir():
        raise ImageError(f"{folder}: data.images is not a folder")
    found = sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not found:
        raise ImageError(f"{folder}: no .jpg, .jpeg or .png files in data.images")
    return found


def generate(out_dir: str | os.PathLike, count: int, seed: int) -> list[Path]:
    """`count` JPEGs at ~500x375 (every fifth portrait), seeded random resized crops and flips of the photos."""
    import torch
    from torchvision.io import encode_jpeg, write_file
    from torchvision.transforms import v2

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    sources = [decode(path) for path in packaged_photographs()]
    landscape = v2.Compose([v2.RandomResizedCrop(PHOTO_SIZE, scale=(0.3, 1.0), antialias=True),
                            v2.RandomHorizontalFlip()])
    portrait = v2.Compose([v2.RandomResizedCrop(PHOTO_SIZE[::-1], scale=(0.3, 1.0), antialias=True),
                           v2.RandomHorizontalFlip()])
    paths = []
    for index in range(count):
        torch.manual_seed(seed * 1_000_003 + index)
        transform = portrait if index % 5 == 4 else landscape
        image = transform(sources[index % len(sources)])
        path = out_dir / f"img_{index:05d}.jpg"
        write_file(str(path), encode_jpeg(image, quality=JPEG_QUALITY))
        paths.append(path)
    return paths


def manifest(paths: list[Path], source: str) -> dict:
    """Checks that every image decodes (naming the first that does not) and records sizes and hashes."""
    entries = []
    for path in paths:
        image = decode(path)
        entries.append({"path": str(path), "sha256": sha256_file(path),
                        "height": int(image.shape[1]), "width": int(image.shape[2])})
    return {"source": source, "count": len(entries), "images": entries}
