"""Agreement of a format's logits with the reference (PyTorch fp32 eager, CPU)."""
from __future__ import annotations

import numpy as np


def compare(logits, reference) -> dict:
    """Both (N, classes) arrays or tensors; returns max/mean |difference| and top-1 agreement in %."""
    logits = np.asarray(logits, dtype=np.float64)
    reference = np.asarray(reference, dtype=np.float64)
    if logits.shape != reference.shape:
        raise ValueError(f"logits shape {logits.shape} differs from the reference's {reference.shape}")
    difference = np.abs(logits - reference)
    agreement = np.mean(np.argmax(logits, axis=1) == np.argmax(reference, axis=1))
    return {
        "images": int(logits.shape[0]),
        "max_abs_diff": float(difference.max()),
        "mean_abs_diff": float(difference.mean()),
        "top1_agreement_pct": float(100.0 * agreement),
        "finite": bool(np.isfinite(logits).all()),
    }
