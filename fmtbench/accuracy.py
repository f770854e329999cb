"""Agreement of a format's logits with the reference (PyTorch fp32 eager on the CPU).

The measure is the relative error of each image's logit vector, ||y - y_ref||₂ / ||y_ref||₂, and its
limit is derived from the arithmetic the configuration runs in, not chosen per format:

    limit = √L · (u_in + √K · u_acc)

Each of the L = 18 weighted layers on ResNet-18's longest path (stem convolution, 16 block convolutions,
the classifier) rounds its inputs and weights to the storage precision (unit roundoff u_in: 2⁻¹¹ for fp16
and for TF32, whose tensor cores keep 10 mantissa bits; 2⁻²⁴ for strict fp32) and accumulates dot products
of up to K = 3·3·512 = 4608 terms in fp32 (u_acc = 2⁻²⁴; a different summation order between two
implementations moves a sum by about √K·u_acc). Rounding errors of successive layers are independent and add
in quadrature (the probabilistic analysis of Higham & Mary, 2019), hence √L rather than the worst case L.
For fp16/TF32 that gives 2.1e-3, for strict fp32 1.7e-5. Measured on the H100: fp16 and TF32 rows 5.6-6.7e-4,
strict fp32 at most 9.5e-7 — inside with a margin of 3 and 18; the same model in bf16 (u = 2⁻⁸) reads
5.7e-3 and one layer's weights perturbed by 1 % read 5.3e-3 (tests/test_accuracy.py): both fail it, as a
wrong cast or a fallback to another precision must. Non-finite logits count as outliers on their own.

Top-1 agreement is kept as a figure, but with random-init weights most images share one predicted class
(`reference_top1_share`), so it says little there; the report does not headline it then.
"""
from __future__ import annotations

import math

import numpy as np

DEPTH = 18                     # weighted layers on ResNet-18's longest path
LONGEST_DOT_PRODUCT = 3 * 3 * 512
UNIT_ROUNDOFF = {"fp16": 2.0 ** -11, "tf32": 2.0 ** -11, "fp32": 2.0 ** -24}


def arithmetic(precision: str, fp32_math: str = "strict") -> str:
    """fp16, tf32 or fp32: what the convolutions' inputs are rounded to."""
    if precision == "fp16":
        return "fp16"
    return "tf32" if fp32_math == "tf32" else "fp32"


def relative_error_limit(precision: str, fp32_math: str = "strict") -> float:
    u_in = UNIT_ROUNDOFF[arithmetic(precision, fp32_math)]
    return math.sqrt(DEPTH) * (u_in + math.sqrt(LONGEST_DOT_PRODUCT) * UNIT_ROUNDOFF["fp32"])


def compare(logits, reference, precision: str = "fp32", fp32_math: str = "strict") -> dict:
    """Both (N, classes) arrays or tensors. Errors over the images whose logits are all finite."""
    logits = np.asarray(logits, dtype=np.float64)
    reference = np.asarray(reference, dtype=np.float64)
    if logits.shape != reference.shape:
        raise ValueError(f"logits shape {logits.shape} differs from the reference's {reference.shape}")
    finite = np.isfinite(logits).all(axis=1)
    difference = np.abs(logits[finite] - reference[finite])
    relative = (np.linalg.norm(logits[finite] - reference[finite], axis=1)
                / np.maximum(np.linalg.norm(reference[finite], axis=1), np.finfo(np.float64).tiny))
    reference_top1 = np.argmax(reference, axis=1)
    _, counts = np.unique(reference_top1, return_counts=True)
    limit = relative_error_limit(precision, fp32_math)
    non_finite = int((~finite).sum())
    max_relative = float(relative.max()) if relative.size else None
    return {
        "images": int(logits.shape[0]),
        "arithmetic": arithmetic(precision, fp32_math),
        "max_rel_error": max_relative,
        "median_rel_error": float(np.median(relative)) if relative.size else None,
        "rel_error_limit": limit,
        "non_finite_images": non_finite,
        "within_limit": bool(non_finite == 0 and max_relative is not None and max_relative <= limit),
        "max_abs_diff": float(difference.max()) if difference.size else None,
        "mean_abs_diff": float(difference.mean()) if difference.size else None,
        "top1_agreement_pct": float(100.0 * np.mean(np.argmax(logits, axis=1) == reference_top1)),
        "reference_top1_share": float(counts.max() / len(reference_top1)),
    }
