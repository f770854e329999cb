"""Findings computed from the data (never written by hand)."""
from __future__ import annotations

import pandas as pd

TOP1_OUTLIER_PCT = 99.0
MAX_ABS_DIFF_LIMIT = {"fp32": 1e-2, "fp16": 0.25}


def _config(row) -> str:
    return (f"{row['format']} {row['precision']} on {row['device']}, batch {int(row['batch_size'])}, "
            f"{row['loader']} loader")


def _where(host: str, ok: pd.DataFrame) -> str:
    return f" (`{host}`)" if ok["host"].nunique() > 1 else ""


def fastest(ok: pd.DataFrame) -> list[str]:
    lines = []
    for (host, device, size), group in ok.groupby(["host", "device", "image_size"], sort=True):
        best = group.loc[group["model_fps"].idxmax()]
        lines.append(f"Fastest at {size}² on {device}{_where(host, ok)}: {_config(best)}: "
                     f"{best['model_fps']:.0f} images/s ({best['median_ms']:.2f} ms per batch).")
    return lines


def fp16_gain(ok: pd.DataFrame) -> list[str]:
    keys = ["host", "device", "format", "image_size", "batch_size", "loader"]
    pairs = ok[ok["precision"] == "fp32"][keys + ["median_ms"]].merge(
        ok[ok["precision"] == "fp16"][keys + ["median_ms"]], on=keys, suffixes=("_fp32", "_fp16"))
    lines = []
    for (host, device, format_name), group in pairs.groupby(["host", "device", "format"], sort=True):
        ratio = group["median_ms_fp32"] / group["median_ms_fp16"]
        lines.append(f"fp16 over fp32, {format_name} on {device}{_where(host, ok)}: median ×{ratio.median():.2f} "
                     f"(range ×{ratio.min():.2f}–×{ratio.max():.2f} over {len(group)} configurations).")
    return lines


def lowest_memory(ok: pd.DataFrame) -> list[str]:
    lines = []
    for (host, device), group in ok.dropna(subset=["memory_mb"]).groupby(["host", "device"], sort=True):
        largest = group[(group["image_size"] == group["image_size"].max())
                        & (group["batch_size"] == group["batch_size"].max())]
        best = largest.loc[largest["memory_mb"].idxmin()]
        lines.append(f"Lowest memory on {device}{_where(host, ok)} at {int(best['image_size'])}², batch {int(best['batch_size'])}: "
                     f"{best['format']} {best['precision']} ({best['loader']} loader), "
                     f"{best['memory_mb']:.1f} MB over baseline.")
    return lines


def accuracy_outliers(ok: pd.DataFrame) -> list[str]:
    rated = ok.dropna(subset=["top1_pct"]).drop_duplicates(["host", "device", "format", "precision", "image_size"])
    limits = rated["precision"].map(MAX_ABS_DIFF_LIMIT)
    outliers = rated[(rated["top1_pct"] < TOP1_OUTLIER_PCT) | (rated["max_abs_diff"] > limits)]
    if outliers.empty:
        return [f"No accuracy outliers: every format agrees with PyTorch fp32 on ≥ {TOP1_OUTLIER_PCT:g} % of "
                f"top-1 predictions, with max |Δlogit| ≤ {MAX_ABS_DIFF_LIMIT['fp32']:g} (fp32) / "
                f"{MAX_ABS_DIFF_LIMIT['fp16']:g} (fp16)."]
    return [f"Accuracy outlier: {row['format']} {row['precision']} on {row['device']}{_where(row['host'], ok)} "
            f"at {row['image_size']}²: "
            f"top-1 agreement {row['top1_pct']:.1f} %, max |Δlogit| {row['max_abs_diff']:.3g}."
            for _, row in outliers.iterrows()]


def noisy(ok: pd.DataFrame) -> list[str]:
    flagged = ok[ok["noisy"].fillna(False).astype(bool)]
    truncated = ok[ok["truncated"].fillna(False).astype(bool)]
    lines = []
    if len(flagged):
        lines.append(f"{len(flagged)} of {len(ok)} measured configurations are noisy (IQR above the set share of "
                     "the median): read their speedups with care.")
    if len(truncated):
        lines.append(f"{len(truncated)} configurations reached max_seconds before min_iters "
                     "(fewer timed iterations than asked).")
    return lines


def all_findings(frame: pd.DataFrame) -> list[str]:
    ok = frame[frame["status"] == "ok"]
    if ok.empty:
        return ["No configuration was measured."]
    return fastest(ok) + fp16_gain(ok) + lowest_memory(ok) + accuracy_outliers(ok) + noisy(ok)
