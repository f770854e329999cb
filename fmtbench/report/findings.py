"""Findings computed from the data (never written by hand). Like is compared with like: per machine,
device, image size and loader; fp32 is named with its math (strict or TF32)."""
from __future__ import annotations

import pandas as pd

from fmtbench import data


def _where(host: str, ok: pd.DataFrame) -> str:
    return f" (`{host}`)" if ok["host"].nunique() > 1 else ""


def precision_label(row) -> str:
    """fp16, or fp32 with its math: "strict fp32 (TF32 off)" / "fp32 with TF32"."""
    math = row.get("math")
    if row["precision"] == "fp16":
        return "fp16"
    if isinstance(math, str) and "TF32)" in math and "off" not in math:
        return "fp32 with TF32"
    return "strict fp32 (TF32 off)" if row["device"] == "cuda" else "fp32"


def _fmt_fps(value: float) -> str:
    return f"{value / 1000:.1f}k" if value >= 10000 else f"{value:.0f}"


def fastest(ok: pd.DataFrame) -> list[str]:
    """Model throughput on the dummy loader, and end-to-end throughput on each real loader, per image size."""
    lines = []
    for (host, device, loader), group in ok.groupby(["host", "device", "loader"], sort=True):
        metric = "e2e_fps" if data.loader(loader).end_to_end else "model_fps"
        group = group.dropna(subset=[metric])
        if group.empty:
            continue
        parts = []
        for size, rows in group.groupby("image_size", sort=True):
            best = rows.loc[rows[metric].idxmax()]
            parts.append(f"{size}²: {best['format']} {precision_label(best)} at batch {int(best['batch_size'])}, "
                         f"{_fmt_fps(best[metric])} img/s")
        what = "end-to-end" if metric == "e2e_fps" else "model"
        line = f"Fastest ({what} throughput) on {device}{_where(host, ok)}, {loader} loader — " + "; ".join(parts)
        capacity = group["decode_capacity_fps"].dropna() if metric == "e2e_fps" else pd.Series(dtype=float)
        if not capacity.empty:
            line += (f" (the loader's decode capacity ranged {_fmt_fps(capacity.min())}–{_fmt_fps(capacity.max())} "
                     "img/s over these rows: where it is below the model throughput, it sets the end-to-end figure "
                     "whatever the format)")
        lines.append(line + ".")
    return lines


def _ratio_line(pairs: pd.DataFrame, what: str, host: str, device: str, format_name: str, ok) -> str:
    ratio = pairs["median_ms_a"] / pairs["median_ms_b"]
    return (f"{what}, {format_name} on {device}{_where(host, ok)}: median ×{ratio.median():.2f} "
            f"(range ×{ratio.min():.2f}–×{ratio.max():.2f} over {len(pairs)} configurations).")


def fp16_gain(ok: pd.DataFrame) -> list[str]:
    """fp16 against the same format's strict fp32 (TF32 off), same loader, size and batch."""
    keys = ["host", "device", "format", "image_size", "batch_size", "loader"]
    strict = ok[(ok["precision"] == "fp32") & ~ok.apply(lambda r: precision_label(r) == "fp32 with TF32", axis=1)]
    pairs = strict[keys + ["median_ms"]].merge(ok[ok["precision"] == "fp16"][keys + ["median_ms"]], on=keys,
                                               suffixes=("_a", "_b"))
    return [_ratio_line(group, "fp16 over strict fp32 (TF32 off)" if device == "cuda" else "fp16 over fp32",
                        host, device, format_name, ok)
            for (host, device, format_name), group in pairs.groupby(["host", "device", "format"], sort=True)]


def tf32_gain(ok: pd.DataFrame, baseline_format: str) -> list[str]:
    """What TF32 buys over strict fp32 for the baseline format (rows whose math says TF32)."""
    keys = ["host", "device", "image_size", "batch_size", "loader"]
    base = ok[(ok["format"] == baseline_format) & (ok["precision"] == "fp32")]
    tf32 = ok[(ok["precision"] == "fp32") & ok.apply(lambda r: precision_label(r) == "fp32 with TF32", axis=1)]
    lines = []
    for name, rows in tf32.groupby("format", sort=True):
        pairs = base[keys + ["median_ms"]].merge(rows[keys + ["median_ms"]], on=keys, suffixes=("_a", "_b"))
        for (host, device), group in pairs.groupby(["host", "device"], sort=True):
            lines.append(_ratio_line(group, f"TF32 over strict fp32 ({name} vs {baseline_format})", host, device,
                                     name, ok))
    return lines


def lowest_memory(ok: pd.DataFrame) -> list[str]:
    """Per loader (a real loader holds prefetched batches, a dummy one a single batch) at the largest
    image size and batch measured."""
    lines = []
    for (host, device, loader), group in ok.dropna(subset=["memory_mb"]).groupby(["host", "device", "loader"],
                                                                                 sort=True):
        largest = group[(group["image_size"] == group["image_size"].max())]
        largest = largest[largest["batch_size"] == largest["batch_size"].max()]
        best = largest.loc[largest["memory_mb"].idxmin()]
        lines.append(f"Lowest memory growth on {device}{_where(host, ok)}, {loader} loader, "
                     f"{int(best['image_size'])}² batch {int(best['batch_size'])}: {best['format']} "
                     f"{precision_label(best)}, {best['memory_mb']:.0f} MB.")
    return lines


def accuracy_outliers(ok: pd.DataFrame, random_weights: bool) -> list[str]:
    rated = ok.dropna(subset=["rel_error_limit"]).drop_duplicates(
        ["host", "device", "format", "precision", "image_size"])
    if rated.empty:
        return []
    outliers = rated[~rated["within_limit"].astype(bool)]
    lines = []
    if outliers.empty:
        lines.append(f"Accuracy: every format is within its precision's relative-error limit against PyTorch "
                     f"fp32 on the CPU (largest: {rated['max_rel_error'].max():.2g}; limits "
                     f"{rated['rel_error_limit'].min():.2g}–{rated['rel_error_limit'].max():.2g}); no non-finite "
                     "logits.")
    for _, row in outliers.iterrows():
        detail = (f"{int(row['non_finite_images'])} images with non-finite logits" if row["non_finite_images"]
                  else f"relative error {row['max_rel_error']:.3g} above the limit {row['rel_error_limit']:.2g}")
        lines.append(f"Accuracy outlier: {row['format']} {precision_label(row)} on {row['device']}"
                     f"{_where(row['host'], ok)} at {row['image_size']}²: {detail}.")
    if not random_weights:
        low = rated[rated["top1_pct"] < 99.0]
        for _, row in low.iterrows():
            lines.append(f"Top-1 agreement below 99 %: {row['format']} {precision_label(row)} on {row['device']} "
                         f"at {row['image_size']}²: {row['top1_pct']:.1f} %.")
    return lines


def reliability(ok: pd.DataFrame, unstable_spread: float) -> list[str]:
    lines = []
    counts = {
        "unstable": (ok["unstable"].fillna(False).astype(bool),
                     f"whose per-process medians spread by more than {unstable_spread:.0%} (marked ‡ in the "
                     "tables: read their speedups with care)"),
        "noisy": (ok["noisy"].fillna(False).astype(bool), "with a noisy process (IQR above the set share of the "
                                                         "median, marked ~)"),
        "throttled": (ok["throttled"].fillna(False).astype(bool), "timed while the GPU reported power or "
                                                                  "thermal clock limits (marked †)"),
        "stalled": (ok["stalled"].fillna(False).astype(bool), "whose end-to-end throughput stayed below 90 % of "
                                                              "min(model throughput, decode capacity) (marked *)"),
        "above": (ok["e2e_above_model"].fillna(False).astype(bool), "whose end-to-end throughput is above their "
                                                                     "model throughput (marked ^)"),
        "coverage": (ok["ci_coverage"].fillna(1.0) < 0.95, "with fewer than 6 timed samples, whose median interval "
                                                           "covers less than 95 %"),
    }
    for flagged, text in counts.values():
        if flagged.any():
            lines.append(f"{int(flagged.sum())} of {len(ok)} measured configurations {text}.")
    contended = ok["contended"].eq(True) if "contended" in ok else pd.Series(False, index=ok.index)
    if contended.any():
        share = ok.loc[contended, "others_cpu_share_max"].dropna() if "others_cpu_share_max" in ok else []
        worst = f"; other processes took up to {max(share):.0%} of their cores" if len(share) else ""
        lines.append(f"{int(contended.sum())} of {len(ok)} configurations measured while other processes used the "
                     f"machine (marked §{worst}; the busiest are named in each result's `contention`): their times "
                     "include that load — rerun them on a quiet machine before comparing them.")
    return lines


def all_findings(frame: pd.DataFrame, baseline_format: str = "torch", unstable_spread: float = 0.05,
                 random_weights: bool = False) -> list[str]:
    ok = frame[frame["status"] == "ok"]
    if ok.empty:
        return ["No configuration was measured."]
    return (fastest(ok) + fp16_gain(ok) + tf32_gain(ok, baseline_format) + lowest_memory(ok)
            + accuracy_outliers(ok, random_weights) + reliability(ok, unstable_spread))
