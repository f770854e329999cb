import logging
import urllib.error

import pytest
import torch

from fmtbench import model


@pytest.fixture
def torch_home(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    return tmp_path / "torch_home"


def test_offline_imagenet_falls_back_loudly_to_seeded_random(torch_home, monkeypatch, caplog):
    def offline(*args, **kwargs):
        raise urllib.error.URLError("Name or service not known")
    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    with caplog.at_level(logging.WARNING):
        weights = model.resolve("imagenet", seed=3)
    assert weights.source == "random-fallback"
    assert "Name or service not known" in weights.detail["reason"]
    assert "FALLING BACK" in caplog.text
    again = model.random_state_dict(3)
    assert all(torch.equal(weights.state_dict[k], again[k]) for k in again)
    line = model.describe({"source": weights.source, **weights.detail})
    assert line.startswith("random init (seed 3; ImageNet weights unavailable")


def test_cached_weights_with_a_wrong_hash_are_refused_naming_the_file(torch_home):
    cached = model.imagenet_cache_path()
    cached.parent.mkdir(parents=True)
    torch.save(model.random_state_dict(0), cached)
    with pytest.raises(model.WeightsError) as error:
        model.resolve("imagenet")
    assert str(cached) in str(error.value)
    assert "f37072fd" in str(error.value)


def test_download_failing_the_hash_check_is_refused(torch_home, monkeypatch):
    def bad_hash(*args, **kwargs):
        raise RuntimeError('invalid hash value (expected "f37072fd", got "0000")')
    monkeypatch.setattr(torch.hub, "download_url_to_file", bad_hash)
    with pytest.raises(model.WeightsError, match="hash check"):
        model.resolve("imagenet")


def test_user_state_dict_is_hash_checked_and_must_be_resnet18(tmp_path):
    path = tmp_path / "weights.pt"
    torch.save(model.random_state_dict(1), path)
    loaded = model.resolve(str(path))
    assert loaded.source == "file" and len(loaded.detail["sha256"]) == 64
    with pytest.raises(model.WeightsError, match="does not match model.sha256"):
        model.resolve(str(path), expected_sha256="deadbeef")
    torch.save({"fc.weight": torch.zeros(2, 2)}, tmp_path / "other.pt")
    with pytest.raises(model.WeightsError, match="not a ResNet-18"):
        model.resolve(str(tmp_path / "other.pt"))
    with pytest.raises(model.WeightsError, match="names no file"):
        model.resolve(str(tmp_path / "missing.pt"))


def test_saved_model_builds_and_runs(tmp_path):
    weights = model.resolve("random", seed=0)
    model.save(weights, tmp_path / "m.pt")
    net = model.build(tmp_path / "m.pt")
    assert not net.training
    with torch.no_grad():
        assert net(torch.randn(1, 3, 64, 64)).shape == (1, 1000)


def test_a_weights_file_holding_a_bare_tensor_is_refused_naming_the_file(tmp_path):
    path = tmp_path / "tensor.pt"
    torch.save(torch.zeros(3), path)
    with pytest.raises(model.WeightsError, match=rf"{path}: holds a Tensor, not a state dict"):
        model.resolve(str(path))


def test_a_random_fallback_is_retried_once_the_download_host_answers(tmp_path):
    from fmtbench import integrity
    from fmtbench.atomic import write_json
    provenance, weights = tmp_path / "provenance.json", tmp_path / "resnet18.pt"
    write_json(provenance, {"source": "random-fallback", "seed": 0, "reason": "offline",
                            "url": "https://download.pytorch.org/models/resnet18-f37072fd.pth"})
    weights.write_bytes(b"weights")
    asked = []

    def offline(host):
        asked.append(host)
        return False
    assert integrity.weights_retry(str(provenance), str(weights), "imagenet", can_reach=offline) is None
    assert asked == ["download.pytorch.org"] and provenance.exists()
    assert integrity.weights_retry(str(provenance), str(weights), "random", can_reach=lambda host: True) is None
    moved = integrity.weights_retry(str(provenance), str(weights), "imagenet", can_reach=lambda host: True)
    assert moved and not provenance.exists() and not weights.exists(), "set aside: the next run fetches them"
    assert (tmp_path / "provenance.json.previous").exists()
