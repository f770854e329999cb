"""The ResNet-18 under test: weights (downloaded and hash-checked, seeded random, or a user's file)."""
from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from fmtbench import checkpoint
from fmtbench.atomic import atomic_path, sha256_file
from fmtbench.checkpoint import RESNET18_CLASSES, WeightsError

log = logging.getLogger(__name__)

IMAGENET_HASH_PREFIX = "f37072fd"  # torchvision's ResNet18_Weights.IMAGENET1K_V1 file name carries it
# torchvision's own names for its ImageNet weights of ResNet-18 (`ResNet18_Weights.IMAGENET1K_V1`, the enum's
# DEFAULT alias, with or without the class name): what its users type, the same file as `imagenet`.
TORCHVISION_WEIGHTS = ("IMAGENET1K_V1", "DEFAULT")
TORCHVISION_CLASS = "ResNet18_Weights"
KEYWORDS = ("imagenet", "random")
ACCEPTED = ("imagenet, random, ResNet18_Weights.IMAGENET1K_V1 (torchvision's name; also IMAGENET1K_V1, DEFAULT), "
            "or the path of a ResNet-18 state dict or training checkpoint (torch.save or .safetensors)")


@dataclass
class Weights:
    state_dict: dict
    source: str                 # imagenet-cache | imagenet-download | random | random-fallback | file
    detail: dict = field(default_factory=dict)


def setting(weights: str) -> str:
    """`model.weights` as the study uses it: torchvision's names for its ResNet-18 ImageNet weights are `imagenet`;
    anything else is kept as written (a keyword or a path). Light (no torchvision import): the Snakefile calls it."""
    name = weights.strip()
    cls, dot, member = name.rpartition(".")
    if member in TORCHVISION_WEIGHTS and (not dot or cls == TORCHVISION_CLASS):
        return "imagenet"
    return weights


def setting_problem(weights: str) -> str | None:
    """Why `model.weights` names nothing the model rule can use (another model's torchvision weights, a path to no
    file), or None. Paths are relative to the working directory, as Snakemake reads them."""
    if setting(weights) in KEYWORDS:
        return None
    try:
        is_file = Path(weights).is_file()
    except (OSError, ValueError):  # a name no file system takes (a NUL byte, too long)
        is_file = False
    cls, dot, member = weights.strip().rpartition(".")
    if dot and cls.endswith("_Weights") and member.isupper() and not is_file:
        return f"{weights!r} is torchvision's name for another model's weights; accepted: {ACCEPTED}"
    if not is_file:
        return f"{weights!r} is no file here ({os.path.abspath(weights)}); accepted: {ACCEPTED}"
    return None


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
        return Weights(checkpoint.load_state_dict(cached), "imagenet-cache",
                       {"path": str(cached), "sha256": digest, "num_classes": RESNET18_CLASSES})
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
    return Weights(checkpoint.load_state_dict(cached), "imagenet-download",
                   {"path": str(cached), "sha256": sha256_file(cached), "url": imagenet_url(),
                    "num_classes": RESNET18_CLASSES})


def _fallback(seed: int, reason: str) -> Weights:
    log.warning("ImageNet weights unavailable (%s): FALLING BACK to seeded random init (seed %d). "
                "Accuracy figures then measure numerical agreement with PyTorch, not ImageNet accuracy.",
                reason, seed)
    return Weights(random_state_dict(seed), "random-fallback",
                   {"reason": reason, "seed": seed, "url": imagenet_url(), "num_classes": RESNET18_CLASSES})


def _from_file(path: Path, expected_sha256: str | None) -> Weights:
    if not path.is_file():
        raise WeightsError(f"{path}: model.weights names no file")
    digest = sha256_file(path)
    if expected_sha256 and not digest.startswith(expected_sha256):
        raise WeightsError(f"{path}: sha256 {digest[:16]}... does not match model.sha256 {expected_sha256}")
    loaded = checkpoint.load_state_dict(path)
    if not isinstance(loaded, Mapping):
        raise WeightsError(f"{path}: holds a {type(loaded).__name__}, not a state dict (a mapping of parameter "
                           "names to tensors, as `torch.save(model.state_dict(), path)` writes)")
    state_dict, unwrapped = checkpoint.unwrap(loaded)
    state_dict = checkpoint.with_batch_norm_counters(state_dict)
    problem = checkpoint.resnet18_problem(state_dict)
    if problem:
        took = f" (after taking off {', '.join(unwrapped)})" if unwrapped else ""
        raise WeightsError(f"{path}: not a ResNet-18 state dict{took}: {problem}")
    if unwrapped:
        log.info("%s: took off %s", path, ", ".join(unwrapped))
    state_dict, stored = checkpoint.as_stored_by_resnet18(state_dict, path)
    if stored:
        log.info("%s: stored as %s, cast to float32 (the study's reference is fp32)", path, ", ".join(stored))
    return Weights(state_dict, "file", {"path": str(path), "sha256": digest, "unwrapped": unwrapped,
                                        "num_classes": checkpoint.num_classes(state_dict), "stored_dtypes": stored})


def resolve(weights: str, seed: int = 0, expected_sha256: str | None = None) -> Weights:
    """`model.weights` (a keyword, torchvision's name for the ImageNet weights, or a path) as a state dict."""
    weights = setting(weights)
    if weights == "imagenet":
        return _imagenet(seed)
    if weights == "random":
        return Weights(random_state_dict(seed), "random", {"seed": seed, "num_classes": RESNET18_CLASSES})
    return _from_file(Path(weights), expected_sha256)


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
    """One line for reports: where the weights came from, what was unwrapped, and the classes of the head."""
    source = provenance["source"]
    if source == "random-fallback":
        line = f"random init (seed {provenance['seed']}; ImageNet weights unavailable: {provenance['reason']})"
    elif source == "random":
        line = f"random init (seed {provenance['seed']})"
    elif source == "file":
        unwrapped = provenance.get("unwrapped") or []
        took = f"; took off {', '.join(unwrapped)}" if unwrapped else ""
        stored = provenance.get("stored_dtypes") or []
        took += f"; stored as {', '.join(stored)}, cast to float32" if stored else ""
        line = f"file {provenance['path']} (sha256 {provenance['sha256'][:12]}{took})"
    else:
        line = f"ImageNet (torchvision IMAGENET1K_V1, sha256 {provenance['sha256'][:12]})"
    # A provenance written before the class count was recorded comes from a model that had to have 1000.
    return f"{line}, {provenance.get('num_classes', RESNET18_CLASSES)} classes"


def build(state_dict_path: str | os.PathLike):
    """ResNet-18 in eval mode, fp32, on the CPU, with the state dict's head (its number of classes); built on the
    meta device so the weights exist once."""
    import torch
    from torchvision.models import resnet18
    state_dict = torch.load(state_dict_path, map_location="cpu", weights_only=True)
    with torch.device("meta"):
        model = resnet18(weights=None, num_classes=checkpoint.num_classes(state_dict))
    model.load_state_dict(state_dict, assign=True)
    return model.eval()
