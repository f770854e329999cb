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
    with pytest.raises(images.ImageError, match="no .jpg"):
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
    batches = [source.next() for _ in range(7)]   # 14 images from a set of 5: the sampler never ends
    source.close()
    assert all(batch.shape == (2, 3, 64, 64) and str(batch.dtype) == "torch.float32" for batch in batches)
    assert all(-3 < float(batch.min()) and float(batch.max()) < 3 for batch in batches)
    raw, seconds = data.ImageFiles(paths, 64).__getitems__([0, 1])
    assert str(raw.dtype) == "torch.uint8" and seconds > 0
    assert torch.allclose(batches[0], data.normalise(raw, "cpu"))
