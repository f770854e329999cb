"""The ResNet-18 under test: weights (downloaded and hash-checked, seeded random, or a user's file)."""
from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from fmtbench.atomic import atomic_path, sha256_file

log = logging.getLogger(__name__)

IMAGENET_HASH_PREFIX = "f37072fd"  # torchvision's ResNet18_Weights.IMAGENET1K_V1 file name carries it


class WeightsError(RuntimeError):
    """Weights that must not be used (wrong hash, unreadable file); the message names the file."""


@dataclass
class Weights:
    state_dict: dict
    source: str                 # imagenet-cache | imagenet-download | random | random-fallback | file
    detail: dict = field(default_factory=dict)


def imagenet_url() -> str:
    from torchvision.models import ResNet18_Weights
    return ResNet18_Weights.IMAGENET1K_V1.url


def imagenet_cache_path() -> Path:
    import torch
    return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(imagenet_url())


def random_state_dict(seed: int) -> dict:
    import torch
    from torchvision.models import resnet18
    torch.manual_seed(seed)
    return resnet18(weights=None).state_dict()


def _load_state_dict(path: Path) -> dict:
    import torch
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises several types for a corrupt file
        raise WeightsError(f"{path}: cannot be read as a state dict ({err})") from err


def _imagenet(seed: int) -> Weights:
    """ImageNet weights from the hub cache or a download, both hash-checked; seeded random if offline."""
    import torch
    cached = imagenet_cache_path()
    if cached.exists():
        digest = sha256_file(cached)
        if not digest.startswith(IMAGENET_HASH_PREFIX):
            raise WeightsError(f"{cached}: sha256 {digest[:16]}... does not start with {IMAGENET_HASH_PREFIX}; "
                               "the file is corrupt or not torchvision's ResNet-18 ImageNet weights. "
                               "Delete it to download it again.")
        return Weights(_load_state_dict(cached), "imagenet-cache", {"path": str(cached), "sha256": digest})
    cached.parent.mkdir(parents=True, exist_ok=True)
    try:
        # download_url_to_file writes to a temporary file and raises on a hash mismatch.
        torch.hub.download_url_to_file(imagenet_url(), str(cached), hash_prefix=IMAGENET_HASH_PREFIX, progress=False)
    except RuntimeError as err:
        if "hash" in str(err):
            raise WeightsError(f"{imagenet_url()}: downloaded file fails the hash check: {err}") from err
        return _fallback(seed, f"download of {imagenet_url()} failed: {err}")
    except OSError as err:  # URLError, timeouts, DNS: offline
        return _fallback(seed, f"download of {imagenet_url()} failed: {err}")
    return Weights(_load_state_dict(cached), "imagenet-download",
                   {"path": str(cached), "sha256": sha256_file(cached), "url": imagenet_url()})


def _fallback(seed: int, reason: str) -> Weights:
    log.warning("ImageNet weights unavailable (%s): FALLING BACK to seeded random init (seed %d). "
                "Accuracy figures then measure numerical agreement with PyTorch, not ImageNet accuracy.",
                reason, seed)
    return Weights(random_state_dict(seed), "random-fallback", {"reason": reason, "seed": seed, "url": imagenet_url()})


def _from_file(path: Path, expected_sha256: str | None) -> Weights:
    if not path.is_file():
        raise WeightsError(f"{path}: model.weights names no file")
    digest = sha256_file(path)
    if expected_sha256 and not digest.startswith(expected_sha256):
        raise WeightsError(f"{path}: sha256 {digest[:16]}... does not match model.sha256 {expected_sha256}")
    state_dict = _load_state_dict(path)
    if not isinstance(state_dict, Mapping):
        raise WeightsError(f"{path}: holds a {type(state_dict).__name__}, not a state dict (a mapping of parameter "
                           "names to tensors, as `torch.save(model.state_dict(), path)` writes)")
    from torchvision.models import resnet18
    try:
        resnet18(weights=None).load_state_dict(state_dict)
    except (RuntimeError, TypeError, AttributeError) as err:
        raise WeightsError(f"{path}: not a ResNet-18 state dict ({str(err)[:300]})") from err
    return Weights(state_dict, "file", {"path": str(path), "sha256": digest})


def resolve(setting: str, seed: int = 0, expected_sha256: str | None = None) -> Weights:
    if setting == "imagenet":
        return _imagenet(seed)
    if setting == "random":
        return Weights(random_state_dict(seed), "random", {"seed": seed})
    return _from_file(Path(setting), expected_sha256)


def save(weights: Weights, path: str | os.PathLike) -> str:
    import torch
    with atomic_path(path) as tmp:
        torch.save(weights.state_dict, tmp)
    return sha256_file(path)


def save_random(path: str, seed: int = 0) -> str:
    """A seeded random state dict at `path` (perf checks run it in a process of their own)."""
    return save(resolve("random", seed=seed), path)


def is_random(provenance: dict) -> bool:
    return provenance["source"] in ("random", "random-fallback")


def weights_record(provenance: dict) -> dict:
    """What every result JSON says of its weights."""
    return {"source": provenance["source"], "random": is_random(provenance), "description": describe(provenance)}


def describe(provenance: dict) -> str:
    """One line for reports: where the weights came from."""
    source = provenance["source"]
    if source == "random-fallback":
        return f"random init (seed {provenance['seed']}; ImageNet weights unavailable: {provenance['reason']})"
    if source == "random":
        return f"random init (seed {provenance['seed']})"
    if source == "file":
        return f"file {provenance['path']} (sha256 {provenance['sha256'][:12]})"
    return f"ImageNet (torchvision IMAGENET1K_V1, sha256 {provenance['sha256'][:12]})"


def build(state_dict_path: str | os.PathLike):
    """ResNet-18 in eval mode, fp32, on the CPU; built on the meta device so the weights exist once."""
    import torch
    from torchvision.models import resnet18
    with torch.device("meta"):
        model = resnet18(weights=None)
    model.load_state_dict(torch.load(state_dict_path, map_location="cpu", weights_only=True), assign=True)
    return model.eval()
