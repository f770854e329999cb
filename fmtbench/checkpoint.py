"""A state dict file as a user gives it (`model.weights`): read without unpickling code, unwrapped from a training
checkpoint, checked as a ResNet-18's (any head), in the dtypes torchvision's ResNet-18 holds."""
from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from fmtbench.logs import one_line

# What training code wraps a state dict in: a checkpoint dict holding it under one of these keys, and the
# prefixes that DataParallel/DistributedDataParallel ("module.") and torch.compile ("_orig_mod.") add to every key.
WRAPPER_KEYS = ("state_dict", "model", "model_state_dict", "net")
KEY_PREFIXES = ("module.", "_orig_mod.")
RESNET18_CLASSES = 1000
LISTED_KEYS = 3  # keys named in a refusal before "and N more"


class WeightsError(RuntimeError):
    """Weights that must not be used (wrong hash, unreadable file); the message names the file."""


def load_state_dict(path: Path) -> dict:
    """The file as torch loads it without unpickling code (tensors only), or why not."""
    import pickle

    import torch
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        raise WeightsError(_pickled_objects(path) or f"{path}: cannot be read as a state dict ({one_line(err)})") \
            from err
    except Exception as err:  # torch raises several types for a corrupt file
        raise WeightsError(f"{path}: cannot be read as a state dict ({one_line(err)})") from err


def _pickled_objects(path: Path) -> str | None:
    """Why a torch file that pickles objects other than tensors is refused, naming them and what to do (torch's own
    message spans lines and offers `weights_only=False`, which runs whatever code the file holds), or None where
    it holds none (then it is damaged)."""
    from torch.serialization import get_unsafe_globals_in_checkpoint
    try:
        names = get_unsafe_globals_in_checkpoint(path)
    except Exception:  # noqa: BLE001 - a file torch cannot even list: said as unreadable by the caller
        return None
    if not names:
        return None
    names = sorted(names, key=lambda name: (name.startswith("torch."), name))  # the file's own classes first
    more = f" and {len(names) - LISTED_KEYS} more" if len(names) > LISTED_KEYS else ""
    return (f"{path}: holds pickled objects besides tensors ({', '.join(names[:LISTED_KEYS])}{more}), which "
            "fmtbench does not unpickle (unpickling runs code the file names). Where you trust the file, save its "
            "state dict once and give that file as model.weights: python -c \"import torch; c = torch.load('"
            f"{path}', weights_only=False); torch.save(c['model'] if isinstance(c, dict) else c.state_dict(), "
            "'resnet18_state_dict.pt')\" ('model': where torchvision's reference scripts keep the weights in a "
            "checkpoint; use the key yours has)")


def _is_tensor(value) -> bool:
    import torch
    return isinstance(value, torch.Tensor)


def unwrap(state_dict: Mapping) -> tuple[dict, list[str]]:
    """The state dict inside a checkpoint as training code saves it, and what was taken off, in order: a wrapper
    dict's key (`{'state_dict': ..., 'epoch': 3}`), a prefix shared by every key (`module.`, `_orig_mod.`)."""
    unwrapped = []
    while not any(_is_tensor(value) for value in state_dict.values()):
        key = next((key for key in WRAPPER_KEYS if isinstance(state_dict.get(key), Mapping)), None)
        if key is None:
            break
        unwrapped.append(f"wrapper key {key!r}")
        state_dict = state_dict[key]
    stripped = True
    while stripped and state_dict:
        stripped = False
        for prefix in KEY_PREFIXES:
            if all(isinstance(key, str) and key.startswith(prefix) for key in state_dict):
                state_dict = {key[len(prefix):]: value for key, value in state_dict.items()}
                unwrapped.append(f"prefix {prefix!r}")
                stripped = True
    return dict(state_dict), unwrapped


def num_classes(state_dict: Mapping) -> int:
    """The classes of a ResNet-18 state dict's head (fc.weight is classes x 512); ImageNet's 1000 if it has none."""
    head = state_dict.get("fc.weight")
    return int(head.shape[0]) if _is_tensor(head) and head.dim() == 2 else RESNET18_CLASSES


def with_batch_norm_counters(state_dict: dict) -> dict:
    """State dicts written before PyTorch 0.4.1 (torchvision's own ImageNet file among them) have no
    `num_batches_tracked`; load_state_dict adds them as 0, and so does this, so that the saved file is complete."""
    import torch
    added = {key.rsplit(".", 1)[0] + ".num_batches_tracked": torch.tensor(0)
             for key in state_dict if key.endswith(".running_mean")}
    return {**added, **state_dict}


def _listed(keys) -> str:
    keys = sorted(map(str, keys))
    shown = ", ".join(keys[:LISTED_KEYS])
    return shown + (f" and {len(keys) - LISTED_KEYS} more" if len(keys) > LISTED_KEYS else "")


def expected_state_dict(classes: int) -> dict:
    """torchvision's ResNet-18 state dict with `classes` outputs, on the meta device (names, shapes, dtypes)."""
    import torch
    from torchvision.models import resnet18
    with torch.device("meta"):
        return resnet18(weights=None, num_classes=classes).state_dict()


def resnet18_problem(state_dict: Mapping) -> str | None:
    """Why a state dict is not a ResNet-18's (with any head), cause first: keys it should not have (a wrapper,
    another architecture), then keys it lacks, then tensors of the wrong shape; None if it is one."""
    expected = expected_state_dict(num_classes(state_dict))
    unexpected = set(state_dict) - set(expected)
    missing = set(expected) - set(state_dict)
    if unexpected:
        hint = (f"; a checkpoint wrapper is unwrapped under the keys {', '.join(WRAPPER_KEYS)}, and the key prefixes "
                f"{', '.join(KEY_PREFIXES)} are taken off" if not any(map(_is_tensor, state_dict.values())) else "")
        return (f"unexpected keys {_listed(unexpected)}"
                + (f" (and missing keys {_listed(missing)})" if missing else "") + hint)
    if missing:
        return f"missing keys {_listed(missing)}"
    for key, tensor in expected.items():
        value = state_dict[key]
        if not _is_tensor(value):
            return f"{key} is a {type(value).__name__}, not a tensor"
        if tuple(value.shape) != tuple(tensor.shape):
            return f"{key} has shape {tuple(value.shape)}, ResNet-18 takes {tuple(tensor.shape)}"
    return None


def as_stored_by_resnet18(state_dict: dict, path: Path) -> tuple[dict, list[str]]:
    """The state dict in the dtypes torchvision's ResNet-18 holds (float32 weights, int64 batch-norm counters),
    and the other floating dtypes it was stored in (a bf16 or fp16 checkpoint: cast up exactly, since the
    study's reference and every format's fp32 row start from fp32 weights; its fp16 rows cast them again).
    A quantized or complex tensor is refused naming its key."""
    import torch
    expected = expected_state_dict(num_classes(state_dict))
    stored, converted = set(), {}
    for key, value in state_dict.items():
        want = expected[key].dtype
        if value.is_quantized or value.is_complex() or not (value.is_floating_point() or want != torch.float32):
            raise WeightsError(f"{path}: {key} is a {str(value.dtype).removeprefix('torch.')} tensor; ResNet-18 "
                               f"takes {str(want).removeprefix('torch.')} (a float checkpoint: fp32, bf16 or fp16)")
        if value.dtype != want and value.is_floating_point() and want.is_floating_point:
            stored.add(str(value.dtype).removeprefix("torch."))
        converted[key] = value.to(want)
    return converted, sorted(stored)
