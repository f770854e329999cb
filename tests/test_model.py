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
    with pytest.raises(model.WeightsError, match="not a ResNet-18 state dict: missing keys"):
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
    from fmtbench.atomic import write_json
    from fmtbench.workflow import integrity
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


def _checkpoints(state_dict):
    """The layouts training code writes, and what taking them apart must say."""
    prefixed = {f"module.{key}": value for key, value in state_dict.items()}
    compiled = {f"_orig_mod.{key}": value for key, value in state_dict.items()}
    return {
        "wrapped.pt": ({"state_dict": state_dict, "epoch": 3, "best_acc1": 0.7}, ["wrapper key 'state_dict'"]),
        "model_key.pt": ({"model": state_dict, "optimizer": {"lr": 0.1}}, ["wrapper key 'model'"]),
        "dataparallel.pt": (prefixed, ["prefix 'module.'"]),
        "compiled.pt": (compiled, ["prefix '_orig_mod.'"]),
        "ddp_of_compiled_in_a_checkpoint.pt": (
            {"state_dict": {f"module._orig_mod.{key}": value for key, value in state_dict.items()}, "epoch": 9},
            ["wrapper key 'state_dict'", "prefix 'module.'", "prefix '_orig_mod.'"]),
    }


@pytest.mark.parametrize("name", list(_checkpoints({})))
def test_checkpoints_as_training_code_saves_them_load_and_say_what_was_unwrapped(tmp_path, name):
    plain = model.random_state_dict(2)
    checkpoint, unwrapped = _checkpoints(plain)[name]
    path = tmp_path / name
    torch.save(checkpoint, path)
    loaded = model.resolve(str(path))
    assert loaded.detail["unwrapped"] == unwrapped
    assert loaded.detail["num_classes"] == 1000
    assert set(loaded.state_dict) == set(plain)
    assert all(torch.equal(loaded.state_dict[key], plain[key]) for key in plain)
    line = model.describe({"source": loaded.source, **loaded.detail})
    assert f"took off {', '.join(unwrapped)}" in line and line.endswith(", 1000 classes")


def test_a_state_dict_from_before_batch_norm_counters_loads_as_torch_loads_it(tmp_path):
    """torchvision's own ImageNet file has no num_batches_tracked: load_state_dict accepts that, and so must we."""
    old = {key: value for key, value in model.random_state_dict(0).items() if "num_batches_tracked" not in key}
    torch.save(old, tmp_path / "old.pt")
    loaded = model.resolve(str(tmp_path / "old.pt"))
    assert set(loaded.state_dict) == set(model.random_state_dict(0)) and loaded.detail["unwrapped"] == []
    model.save(loaded, tmp_path / "resnet18.pt")
    model.build(tmp_path / "resnet18.pt")


def test_a_fine_tuned_resnet18_with_another_head_is_built_with_that_head(tmp_path):
    from torchvision.models import resnet18
    torch.manual_seed(0)
    fine_tuned = resnet18(weights=None, num_classes=10).eval()
    path = tmp_path / "cifar10.pt"
    torch.save({"state_dict": {f"module.{k}": v for k, v in fine_tuned.state_dict().items()}}, path)
    loaded = model.resolve(str(path))
    assert loaded.detail["num_classes"] == 10
    assert "10 classes" in model.describe({"source": loaded.source, **loaded.detail})
    model.save(loaded, tmp_path / "resnet18.pt")
    net = model.build(tmp_path / "resnet18.pt")
    batch = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(net(batch), fine_tuned(batch)) and net(batch).shape == (2, 10)
    assert model.describe({"source": "random", "seed": 0}) == "random init (seed 0), 1000 classes"


@pytest.mark.parametrize("make, cause", [
    (lambda sd: {**sd, "extra.weight": torch.zeros(1)}, "unexpected keys extra.weight"),
    (lambda sd: {"weights": sd, "epoch": 3}, "unexpected keys epoch, weights (and missing keys bn1.bias, bn1."),
    (lambda sd: {k: v for k, v in sd.items() if k != "layer4.1.bn2.bias"}, "missing keys layer4.1.bn2.bias"),
    (lambda sd: {**{k: v for k, v in sd.items() if not k.startswith("layer1.")},
                 **{"layer1.0.conv9.weight": torch.zeros(1)}},
     "unexpected keys layer1.0.conv9.weight (and missing keys layer1.0.bn1.bias, layer1.0.bn1.num_batches_tracked, "
     "layer1.0.bn1.running_mean and 21 more)"),
    (lambda sd: {**sd, "conv1.weight": torch.zeros(64, 3, 3, 3)},
     "conv1.weight has shape (64, 3, 3, 3), ResNet-18 takes (64, 3, 7, 7)"),
])
def test_anything_else_is_refused_in_one_line_with_the_cause_first(tmp_path, make, cause):
    message = _refused(tmp_path, make)
    assert message.startswith("not a ResNet-18 state dict") and cause in message, message


def _refused(tmp_path, make) -> str:
    """The one-line refusal of a state dict `make` derives from a ResNet-18's, after the file's name."""
    path = tmp_path / "other.pt"
    torch.save(make(model.random_state_dict(0)), path)
    with pytest.raises(model.WeightsError) as error:
        model.resolve(str(path))
    message = str(error.value)
    assert message.startswith(f"{path}: ") and "\n" not in message and "\x1b" not in message, message
    return message.removeprefix(f"{path}: ")


def test_a_pickled_module_is_refused_in_one_line(tmp_path):
    from torchvision.models import resnet18
    path = tmp_path / "module.pt"
    torch.save(resnet18(weights=None), path)  # the whole module: weights_only loading refuses it
    with pytest.raises(model.WeightsError) as error:
        model.resolve(str(path))
    message = str(error.value)
    assert message.startswith(f"{path}: holds pickled objects besides tensors (torchvision.models.resnet.BasicBlock, "
                              "torchvision.models.resnet.ResNet, torch."), message
    assert "and 6 more), which fmtbench does not unpickle" in message and "c.state_dict()" in message, message
    assert "\n" not in message and "\x1b" not in message


def test_a_training_checkpoint_pickling_its_arguments_is_refused_naming_them_and_the_fix(tmp_path):
    """What torchvision's reference training scripts save (`model` with DataParallel's `module.` keys, an optimizer,
    the command line's argparse.Namespace): torch's refusal was cut after its first line ("... you have two
    options,"), naming neither the object nor what to do. The whole message names both; the fix it gives works."""
    import argparse
    import subprocess
    import sys
    path = tmp_path / "checkpoint.pth"
    net = model.random_state_dict(0)
    torch.save({"model": {f"module.{key}": value for key, value in net.items()}, "optimizer": {"state": {}},
                "lr_scheduler": {}, "epoch": 89, "args": argparse.Namespace(lr=0.1, epochs=90)}, path)
    with pytest.raises(model.WeightsError) as error:
        model.resolve(str(path))
    message = str(error.value)
    assert message.startswith(f"{path}: holds pickled objects besides tensors (argparse.Namespace), which fmtbench "
                              "does not unpickle"), message
    assert "\n" not in message and "\x1b" not in message and message.endswith("use the key yours has)"), message
    fix = message.split("python -c ", 1)[1].split(" ('model'", 1)[0].strip('"')
    subprocess.run([sys.executable, "-c", fix], cwd=tmp_path, check=True)
    loaded = model.resolve(str(tmp_path / "resnet18_state_dict.pt"))
    assert loaded.detail["unwrapped"] == ["prefix 'module.'"]
    assert all(torch.equal(loaded.state_dict[key], value) for key, value in net.items())


@pytest.mark.parametrize("dtype, everything", [(torch.bfloat16, False), (torch.float16, False),
                                               (torch.bfloat16, True)])
def test_a_half_precision_checkpoint_is_cast_to_fp32_and_says_so(tmp_path, dtype, everything):
    """`{k: v.to(torch.bfloat16)}` (floats only, or every tensor): the study's reference is fp32, so the weights
    are cast up exactly and the provenance says how they were stored (they used to stay bf16, and the reference
    job died on "Input type (torch.FloatTensor) and weight type (CPUBFloat16Type) should be the same")."""
    plain = model.random_state_dict(4)
    half = {key: value.to(dtype) if everything or value.is_floating_point() else value
            for key, value in plain.items()}
    path = tmp_path / "half.pt"
    torch.save(half, path)
    loaded = model.resolve(str(path))
    name = str(dtype).removeprefix("torch.")
    assert loaded.detail["stored_dtypes"] == [name]
    assert {key: value.dtype for key, value in loaded.state_dict.items()} == {
        key: value.dtype for key, value in plain.items()}, "float32 weights, int64 batch-norm counters"
    assert all(torch.equal(loaded.state_dict[key], half[key].to(plain[key].dtype)) for key in plain), "exact"
    assert f"stored as {name}, cast to float32" in model.describe({"source": loaded.source, **loaded.detail})
    model.save(loaded, tmp_path / "resnet18.pt")
    with torch.no_grad():  # what the reference job does with it
        assert model.build(tmp_path / "resnet18.pt")(torch.randn(1, 3, 32, 32)).dtype == torch.float32


@pytest.mark.parametrize("make, cause", [
    (lambda sd: {**sd, "fc.bias": torch.zeros(1000, dtype=torch.int32)},
     "fc.bias is a int32 tensor; ResNet-18 takes float32"),
    (lambda sd: {**sd, "fc.bias": torch.zeros(1000, dtype=torch.complex64)},
     "fc.bias is a complex64 tensor; ResNet-18 takes float32"),
])
def test_a_tensor_of_a_kind_resnet18_cannot_hold_is_refused_naming_its_key(tmp_path, make, cause):
    assert _refused(tmp_path, make).startswith(cause)


def test_a_safetensors_checkpoint_loads_with_the_readme_install(tmp_path):
    """The README's install brings safetensors (a dependency), so a Hugging Face style checkpoint loads, in
    bf16 too."""
    import tomllib
    from pathlib import Path

    from safetensors.torch import save_file
    dependencies = tomllib.loads((Path(__file__).parent.parent / "pyproject.toml").read_text())["project"]
    assert "safetensors" in dependencies["dependencies"]
    plain = model.random_state_dict(5)
    save_file({key: value.to(torch.bfloat16) if value.is_floating_point() else value
               for key, value in plain.items()}, tmp_path / "model.safetensors")
    loaded = model.resolve(str(tmp_path / "model.safetensors"))
    assert loaded.detail["stored_dtypes"] == ["bfloat16"] and loaded.detail["num_classes"] == 1000
    assert loaded.state_dict["fc.weight"].dtype == torch.float32
    (tmp_path / "broken.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json")
    with pytest.raises(model.WeightsError) as error:
        model.resolve(str(tmp_path / "broken.safetensors"))
    assert str(error.value).startswith(f"{tmp_path / 'broken.safetensors'}: cannot be read as a state dict (")
    assert "\n" not in str(error.value)


@pytest.mark.parametrize("typed", ["ResNet18_Weights.IMAGENET1K_V1", "ResNet18_Weights.DEFAULT", "IMAGENET1K_V1",
                                   "DEFAULT", "imagenet"])
def test_torchvisions_names_for_the_imagenet_weights_are_the_imagenet_weights(typed):
    assert model.setting(typed) == "imagenet" and model.setting_problem(typed) is None


def test_the_names_accepted_are_torchvisions_own():
    """Every member of torchvision's ResNet18_Weights (and DEFAULT) is accepted, and each is the file the study
    downloads: a torchvision that adds weights (a V2) fails here rather than downloading V1 under V2's name."""
    from torchvision.models import ResNet18_Weights, get_weight
    assert {weights.name for weights in ResNet18_Weights} | {"DEFAULT"} == set(model.TORCHVISION_WEIGHTS)
    for name in model.TORCHVISION_WEIGHTS:
        assert get_weight(f"{model.TORCHVISION_CLASS}.{name}").url == model.imagenet_url()


def test_another_models_weights_or_a_missing_file_are_named_with_what_is_accepted(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    other = model.setting_problem("ResNet50_Weights.IMAGENET1K_V2")
    assert other.startswith("'ResNet50_Weights.IMAGENET1K_V2' is torchvision's name for another model's weights")
    missing = model.setting_problem("weights/resnet.pt")
    assert missing.startswith(f"'weights/resnet.pt' is no file here ({tmp_path / 'weights/resnet.pt'})")
    assert all("accepted: imagenet, random, ResNet18_Weights.IMAGENET1K_V1" in text for text in (other, missing))
    (tmp_path / "weights").mkdir()
    torch.save(model.random_state_dict(0), tmp_path / "weights/resnet.pt")
    assert model.setting_problem("weights/resnet.pt") is None
    assert model.setting("weights/resnet.pt") == "weights/resnet.pt"
