"""Summary statistics of per-iteration times (numpy), in the spirit of torch.utils.benchmark's Measurement."""
from __future__ import annotations

import math

import numpy as np

Z_95 = 1.959963984540054


def median_ci95(sorted_values: np.ndarray) -> tuple[float, float]:
    """Distribution-free 95 % confidence interval of the median from order statistics.

    Ranks n/2 -/+ z*sqrt(n)/2 (normal approximation to the binomial); with fewer than 6 values the
    interval cannot reach 95 % and spans the whole sample.
    """
    n = len(sorted_values)
    if n < 6:
        return float(sorted_values[0]), float(sorted_values[-1])
    half_width = Z_95 * math.sqrt(n) / 2
    lower = max(int(math.floor(n / 2 - half_width)), 0)
    upper = min(int(math.ceil(n / 2 + half_width)), n - 1)
    return float(sorted_values[lower]), float(sorted_values[upper])


def summarize(times_s, noisy_iqr_ratio: float = 0.10) -> dict:
    """Times in seconds -> summary in milliseconds."""
    values = np.sort(np.asarray(times_s, dtype=np.float64)) * 1e3
    if values.size == 0:
        raise ValueError("no timed iterations")
    median = float(np.median(values))
    q1, q3 = np.percentile(values, [25, 75])
    iqr = float(q3 - q1)
    return {
        "unit": "ms",
        "count": int(values.size),
        "median": median,
        "mean": float(values.mean()),
        "p90": float(np.percentile(values, 90)),
        "p99": float(np.percentile(values, 99)),
        "min": float(values[0]),
        "max": float(values[-1]),
        "std": float(values.std(ddof=1)) if values.size > 1 else 0.0,
        "iqr": iqr,
        "ci95_median": list(median_ci95(values)),
        "noisy": bool(median > 0 and iqr / median > noisy_iqr_ratio),
    }
