"""The image set: a user's folder of image files, or a deterministic set made from packaged photographs."""
from __future__ import annotations

import io as _io
import logging
import os
import warnings
from pathlib import Path

from fmtbench.atomic import sha256_file
from fmtbench.logs import one_line

log = logging.getLogger(__name__)

# What torchvision.io.decode_image reads (an animated GIF: its first frame), and what Pillow reads where
# torchvision has no decoder. Any other file in data.images is skipped, and the log names each one.
TORCHVISION_SUFFIXES = {".jpg", ".jpeg", ".png", ".gif", ".webp"}
PILLOW_SUFFIXES = {".bmp", ".tif", ".tiff"}
IMAGE_SUFFIXES = TORCHVISION_SUFFIXES | PILLOW_SUFFIXES
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
                         "set data.images to a folder of image files")
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


def decode_with_pillow(data: bytes):
    """8-bit RGB tensor (3, H, W) of a file torchvision has no decoder for (BMP, TIFF), EXIF orientation applied;
    16-bit grey rounded to 8 bits as decode_bytes does."""
    import numpy as np
    import torch
    from PIL import Image, ImageOps
    with Image.open(_io.BytesIO(data)) as opened:
        image = ImageOps.exif_transpose(opened)
        if image.mode.startswith("I;16") or image.mode == "I":
            grey = np.asarray(image, dtype=np.int64)
            if image.mode == "I" and grey.max(initial=0) > 65535:
                raise ValueError("32-bit integer samples (8- and 16-bit images only)")
            grey = ((grey.clip(0, 65535) * 255 + 32767) // 65535).astype(np.uint8)
            rgb = np.repeat(grey[..., None], 3, axis=-1)
        else:
            rgb = np.asarray(image.convert("RGB"))
    return torch.from_numpy(np.array(rgb, dtype=np.uint8)).permute(2, 0, 1).contiguous()


def decode_bytes(data, path: str | os.PathLike):
    """8-bit RGB tensor (3, H, W) from a file's bytes (a uint8 tensor), whatever the file holds: JPEG, PNG, GIF
    (its first frame), WebP through torchvision, BMP and TIFF through Pillow; 8- or 16-bit, grey, grey + alpha,
    palette, RGBA (alpha dropped), CMYK; EXIF orientation applied. ImageError naming the file if it cannot be
    decoded."""
    import torch
    io = torchvision_io()
    try:
        image = io.decode_image(data, mode=io.ImageReadMode.RGB, apply_exif_orientation=True)
    except Exception as err:  # torchvision raises RuntimeError/ValueError depending on the decoder
        try:  # a format torchvision has no decoder for
            image = decode_with_pillow(data.numpy().tobytes())
        except Exception:  # noqa: BLE001 - Pillow cannot read it either: torchvision's reason is the one to give
            raise ImageError(f"{path}: unreadable image ({one_line(err)})") from err
    if image.dim() == 4:  # an animated GIF: every frame; the first is the picture
        image = image[0]
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


def scan_folder(folder: str | os.PathLike) -> tuple[list[Path], list[Path]]:
    """(the image files of a folder tree, the other files), each sorted; every skipped file is logged once."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ImageError(f"{folder}: data.images is not a folder")
    files = sorted(p for p in folder.rglob("*") if p.is_file())
    found = [p for p in files if p.suffix.lower() in IMAGE_SUFFIXES]
    skipped = [p for p in files if p.suffix.lower() not in IMAGE_SUFFIXES]
    for path in skipped:
        log.warning("%s: skipped, not an image file fmtbench reads (%s)", path, ", ".join(sorted(IMAGE_SUFFIXES)))
    if not found:
        raise ImageError(f"{folder}: no image files in data.images (it reads {', '.join(sorted(IMAGE_SUFFIXES))})")
    return found, skipped


def find_images(folder: str | os.PathLike) -> list[Path]:
    return scan_folder(folder)[0]


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


def distinct_per_batch(n_images: int, batch_size: int) -> int:
    """How many different images a batch holds: the loaders cycle through the manifest's images in order, so a
    batch larger than the set repeats them (2 images, batch 4: a, b, a, b)."""
    if n_images < 1 or batch_size < 1:
        raise ValueError(f"distinct_per_batch: {n_images} images, batch {batch_size}: both must be positive")
    return min(n_images, batch_size)


def manifest(paths: list[Path], source: str, skipped: list[Path] = ()) -> dict:
    """Checks that every image decodes (naming the first that does not) and records sizes and hashes, how many
    different pictures the files hold (identical files count once) and the files that were skipped."""
    entries = []
    for path in paths:
        image = decode(path)
        entries.append({"path": str(path), "sha256": sha256_file(path),
                        "height": int(image.shape[1]), "width": int(image.shape[2]),
                        "nvjpeg": nvjpeg_decodable(path)})
    return {"source": source, "count": len(entries), "distinct_images": len({e["sha256"] for e in entries}),
            "images": entries, "skipped": [str(path) for path in skipped]}
