from pathlib import Path

import pytest
import torch

from fmtbench import data, images


def test_generated_set_is_deterministic_and_photo_sized(tmp_path):
    first = images.generate(tmp_path / "a", count=6, seed=0)
    second = images.generate(tmp_path / "b", count=6, seed=0)
    assert [p.read_bytes() for p in first] == [p.read_bytes() for p in second]
    manifest = images.manifest(first, "generated")
    shapes = {(e["height"], e["width"]) for e in manifest["images"]}
    assert shapes == {(375, 500), (500, 375)}
    other = images.generate(tmp_path / "c", count=1, seed=1)
    assert other[0].read_bytes() != first[0].read_bytes()


def test_folder_is_searched_recursively_for_images(tmp_path):
    (tmp_path / "sub").mkdir()
    generated = images.generate(tmp_path / "sub", count=2, seed=0)
    (tmp_path / "notes.txt").write_text("not an image")
    assert images.find_images(tmp_path) == sorted(generated)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(images.ImageError, match="no image files in data.images"):
        images.find_images(empty)


def test_unreadable_image_is_named(tmp_path):
    good = images.generate(tmp_path, count=1, seed=0)
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8 this is not a jpeg")
    with pytest.raises(images.ImageError) as error:
        images.manifest([*good, broken], "folder")
    assert str(broken) in str(error.value)


def test_real_loader_yields_normalised_batches_without_end(tmp_path):
    from fmtbench.atomic import write_json
    paths = [str(p) for p in images.generate(tmp_path, count=5, seed=0)]
    manifest = tmp_path / "manifest.json"
    write_json(manifest, images.manifest([Path(p) for p in paths], "test"))
    source = data.RealSource(data.SourceRequest("cpu", 64, 2, 0, str(manifest)))
    source.start()  # after the memory baseline, in a measuring process
    batches = [source.next() for _ in range(7)]   # 14 images from a set of 5: the sampler never ends
    source.close()
    assert all(batch.shape == (2, 3, 64, 64) and str(batch.dtype) == "torch.float32" for batch in batches)
    assert all(-3 < float(batch.min()) and float(batch.max()) < 3 for batch in batches)
    raw, seconds = data.ImageFiles(paths, 64).__getitems__([0, 1])
    assert str(raw.dtype) == "torch.uint8" and seconds > 0
    assert torch.allclose(batches[0], data.normalise(raw, "cpu"))


def _png_rgb16(path, pixels):
    """A 16-bit-per-channel RGB PNG (Pillow cannot write one): the smallest valid file, written by hand."""
    import struct
    import zlib
    height, width, _ = pixels.shape

    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
    rows = b"".join(b"\x00" + pixels[y].astype(">u2").tobytes() for y in range(height))
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 16, 2, 0, 0, 0))
                     + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))


@pytest.fixture
def photo_folder(tmp_path):
    """One smooth 8-bit RGB picture (JPEG keeps it close) saved in every mode a photo folder may hold."""
    import numpy as np
    from PIL import Image
    y, x = np.mgrid[0:24, 0:40]
    rgb = np.stack([x * 6, y * 10, 255 - x * 3 - y * 4], axis=-1).astype(np.uint8)
    picture = Image.fromarray(rgb)
    picture.save(tmp_path / "rgb.png")
    picture.save(tmp_path / "rgb.jpg", quality=95)
    picture.convert("L").save(tmp_path / "grey.png")
    Image.fromarray(np.asarray(picture.convert("L")).astype(np.uint16) * 257).save(tmp_path / "grey16.png")
    _png_rgb16(tmp_path / "rgb16.png", rgb.astype(np.uint16) * 257)
    picture.convert("P").save(tmp_path / "palette.png")
    picture.convert("LA").save(tmp_path / "grey_alpha.png")
    picture.convert("RGBA").save(tmp_path / "rgba.png")
    picture.convert("CMYK").save(tmp_path / "cmyk.jpg", quality=95)
    exif = picture.getexif()
    exif[images.EXIF_ORIENTATION] = 6  # stored sideways: a viewer turns it 90° clockwise
    picture.save(tmp_path / "rotated.jpg", exif=exif, quality=95)
    return tmp_path, rgb


def test_every_image_mode_decodes_to_8_bit_rgb_like_the_8_bit_original(photo_folder):
    folder, rgb = photo_folder
    original = torch.from_numpy(rgb).permute(2, 0, 1)
    grey = images.decode(folder / "grey.png")
    decoded = {path.name: images.decode(path) for path in images.find_images(folder)}
    assert all(image.dtype == torch.uint8 and image.shape[0] == 3 for image in decoded.values())
    for name in ("rgb.png", "rgb16.png", "palette.png", "rgba.png"):
        tolerance = 64 if name == "palette.png" else 0  # a palette has 256 colours
        assert (decoded[name].int() - original.int()).abs().float().mean() <= tolerance, name
    for name in ("grey16.png", "grey_alpha.png"):
        assert torch.equal(decoded[name], grey), name
    for name in ("cmyk.jpg", "rgb.jpg"):
        assert (decoded[name].int() - original.int()).abs().float().mean() < 8, name
    rotated = decoded["rotated.jpg"]
    assert rotated.shape == (3, 40, 24), "EXIF orientation applied"
    assert (rotated.int() - torch.rot90(decoded["rgb.jpg"], -1, (1, 2)).int()).abs().float().mean() < 4


def test_a_folder_mixing_8_and_16_bit_files_gives_normalised_batches_and_says_which_go_to_nvjpeg(photo_folder):
    from fmtbench.atomic import write_json
    folder, _ = photo_folder
    manifest = tmp = folder / "manifest.json"
    entries = images.manifest(images.find_images(folder), "folder")
    write_json(tmp, entries)
    assert {Path(e["path"]).name for e in entries["images"] if e["nvjpeg"]} == {"rgb.jpg"}
    source = data.RealSource(data.SourceRequest("cpu", 16, len(entries["images"]), 0, str(manifest)))
    source.start()
    batch = source.next()
    source.close()
    assert batch.shape == (10, 3, 16, 16) and -2.2 < float(batch.min()) and float(batch.max()) < 2.7


def test_torchvisions_codec_deprecation_notice_is_filtered_once_and_nothing_else():
    """torchvision >= 0.29 points its image codecs to TorchCodec on every call; the filter takes that notice only
    (added once, not a catch_warnings per call: that is not thread-safe and the GPU decode thread calls it)."""
    import warnings

    from fmtbench import images
    with warnings.catch_warnings(record=True) as seen:
        images.torchvision_io()
        before = len(warnings.filters)
        images.torchvision_io()
        assert len(warnings.filters) == before, "added once"
        warnings.warn("The image decoding and encoding capabilities of TorchVision are deprecated",
                      DeprecationWarning, stacklevel=1)
        warnings.warn("another deprecation", DeprecationWarning, stacklevel=1)
    assert [str(w.message) for w in seen] == ["another deprecation"]


def test_every_format_the_decoders_read_is_taken_and_any_other_file_is_named_once(photo_folder, caplog):
    """A folder of a.webp + b.jpg measured one image and never mentioned the WebP."""
    import logging

    import numpy as np
    from PIL import Image
    folder, rgb = photo_folder
    picture = Image.fromarray(rgb)
    picture.save(folder / "lossless.webp", lossless=True)
    picture.save(folder / "lossy.webp", quality=95)
    picture.save(folder / "bitmap.bmp")
    picture.save(folder / "scan.tif")
    picture.save(folder / "scan_lzw.tiff", compression="tiff_lzw")
    Image.fromarray(np.asarray(picture.convert("L")).astype(np.uint16) * 257).save(folder / "grey16.tif")
    picture.save(folder / "still.gif")
    picture.save(folder / "animated.gif", save_all=True, append_images=[picture.transpose(Image.FLIP_LEFT_RIGHT)])
    (folder / "notes.txt").write_text("not an image")
    (folder / "raw.cr2").write_bytes(b"II*\x00 a camera raw file")
    with caplog.at_level(logging.WARNING, logger="fmtbench.images"):
        found, skipped = images.scan_folder(folder)
    assert [p.name for p in skipped] == ["notes.txt", "raw.cr2"]
    for name in ("notes.txt", "raw.cr2"):
        assert sum(name in record.getMessage() and "skipped" in record.getMessage()
                   for record in caplog.records) == 1, "each skipped file is logged once"
    original = torch.from_numpy(rgb).permute(2, 0, 1)
    decoded = {path.name: images.decode(path) for path in found}
    for name in ("lossless.webp", "bitmap.bmp", "scan.tif", "scan_lzw.tiff"):
        assert torch.equal(decoded[name], original), name
    assert (decoded["lossy.webp"].int() - original.int()).abs().float().mean() < 8
    for name in ("still.gif", "animated.gif"):  # 256 colours; an animation's first frame
        assert decoded[name].shape == (3, 24, 40) and (decoded[name].int() - original.int()).abs().float().mean() < 64
    assert torch.equal(decoded["grey16.tif"], images.decode(folder / "grey.png"))
    manifest = images.manifest(found, "folder", skipped)
    assert manifest["count"] == len(found) and manifest["skipped"] == [str(p) for p in skipped]
    assert {"path", "nvjpeg", "sha256", "height", "width"} <= set(manifest["images"][0])


def test_the_manifest_counts_distinct_images_and_a_batch_says_how_many_it_held(tmp_path):
    import shutil
    first, second = images.generate(tmp_path, count=2, seed=0)
    shutil.copy(first, tmp_path / "copy_of_first.jpg")
    manifest = images.manifest([first, second, tmp_path / "copy_of_first.jpg"], "folder")
    assert manifest["count"] == 3 and manifest["distinct_images"] == 2
    assert images.distinct_per_batch(2, 4) == 2   # a, b, a, b
    assert images.distinct_per_batch(256, 64) == 64
    assert images.distinct_per_batch(5, 5) == 5
    with pytest.raises(ValueError, match="both must be positive"):
        images.distinct_per_batch(0, 4)
