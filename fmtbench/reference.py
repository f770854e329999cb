"""Reference logits: PyTorch fp32 eager on the CPU over the fixed batch of real images."""
from __future__ import annotations

from fmtbench import data, model
from fmtbench.atomic import atomic_path


def compute(weights_path, manifest_path, size: int, count: int, out_path, threads: int | None = None) -> None:
    import torch
    if threads:
        torch.set_num_threads(threads)
    batch, images = data.fixed_batch(data.image_paths(manifest_path), size, count)
    with torch.inference_mode():
        logits = model.build(weights_path)(batch)
    with atomic_path(out_path) as tmp:
        torch.save({"logits": logits, "images": images, "size": size}, tmp)
