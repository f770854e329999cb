"""The image set: a user's folder of JPEG/PNG files, or a deterministic set made from packaged photographs."""
from __future__ import annotations

import os
import warnings
from pathlib import Path

from fmtbench.atomic import sha256_file

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png"}
# Photographs (not drawings) that matplotlib ships in mpl-data/sample_data.
KNOWN_PHOTOGRAPHS = ("grace_hopper.jpg", "Minduka_Present_Blue_Pack.png")
PHOTO_SIZE = (375, 500)      # height, width: a typical 4:3 photo
JPEG_QUALITY = 90
EXIF_ORIENTATION = 0x0112


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


def torchvision_io():
    """torchvision.io, with its codecs' deprecation notice (torchvision >= 0.29 points to TorchCodec) filtered out:
    they are what the supported torchvision range (0.26-0.29) has in common. The filter is added, not scoped:
    `warnings.catch_warnings` is not thread-safe, and the GPU decode thread calls this while the measuring
    thread runs (an identical filter replaces the previous one, so the list does not grow)."""
    warnings.filterwarnings("ignore", message="The image decoding and encoding capabilities of TorchVision",
                            category=DeprecationWarning)
    import torchvision.io
    return torchvision.io


def decode_bytes(data, path: str | os.PathLike):
    """8-bit RGB tensor (3, H, W) from a file's bytes (a uint8 tensor), whatever the file holds: 8- or 16-bit,
    grey, grey + alpha, palette, RGBA (alpha dropped), CMYK; EXIF orientation applied. ImageError naming the
    file if it cannot be decoded."""
    import torch
    io = torchvision_io()
    try:
        image = io.decode_image(data, mode=io.ImageReadMode.RGB, apply_exif_orientation=True)
    except Exception as err:  # torchvision raises RuntimeError/ValueError depending on the decoder
        raise ImageError(f"{path}: unreadable image ({err})") from err
    if image.dtype == torch.uint16:  # 16-bit PNG: round to the nearest 8-bit value
        return ((image.to(torch.int32) * 255 + 32767) // 65535).to(torch.uint8)
    if image.dtype != torch.uint8:
        raise ImageError(f"{path}: unsupported sample type {image.dtype} (8- and 16-bit images only)")
    return image


def decode(path: str | os.PathLike):
    """8-bit RGB tensor (3, H, W) of an image file (see decode_bytes)."""
    try:
        data = torchvision_io().read_file(str(path))
    except Exception as err:
        raise ImageError(f"{path}: unreadable image ({err})") from err
    return decode_bytes(data, path)


def nvjpeg_decodable(path: str | os.PathLike) -> bool:
    """Whether nvJPEG decodes this file as decode() does: an 8-bit RGB or grey baseline JPEG whose EXIF
    orientation is upright (torchvision's CUDA decoder ignores EXIF orientation; CMYK goes to the CPU too)."""
    from PIL import Image
    try:
        with Image.open(path) as image:
            return (image.format == "JPEG" and image.mode in ("RGB", "L")
                    and image.getexif().get(EXIF_ORIENTATION, 1) == 1)
    except OSError:
        return False


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
        io = torchvision_io()
        io.write_file(str(path), io.encode_jpeg(image, quality=JPEG_QUALITY))
        paths.append(path)
    return paths


def manifest(paths: list[Path], source: str) -> dict:
    """Checks that every image decodes (naming the first that does not) and records sizes and hashes."""
    entries = []
    for path in paths:
        image = decode(path)
        entries.append({"path": str(path), "sha256": sha256_file(path),
                        "height": int(image.shape[1]), "width": int(image.shape[2]),
                        "nvjpeg": nvjpeg_decodable(path)})
    return {"source": source, "count": len(entries), "images": entries}
