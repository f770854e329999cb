"""Plots (matplotlib, Agg, no timestamps in the files so the same data gives the same bytes)."""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

SAVE = {"dpi": 110, "metadata": {"Software": None}}


def _series_label(row) -> str:
    return f"{row['format']} {row['precision']} {row['device']}"


def throughput_vs_batch(ok: pd.DataFrame, size: int, path: Path) -> None:
    """Model throughput vs batch size, one line per format/precision/device, dummy loader."""
    data = ok[(ok["image_size"] == size) & (ok["loader"] == "dummy")]
    if data.empty:
        data = ok[ok["image_size"] == size]
    figure, axes = plt.subplots(figsize=(7, 4.2))
    for (format_name, precision, device), group in data.groupby(["format", "precision", "device"], sort=True):
        group = group.sort_values("batch_size")
        axes.plot(group["batch_size"], group["model_fps"], marker="o", label=f"{format_name} {precision} {device}")
    axes.set_xlabel("batch size")
    axes.set_ylabel("images / s (model time, median)")
    axes.set_title(f"Throughput vs batch size, {size}×{size}, {data['loader'].iloc[0]} loader")
    axes.grid(alpha=0.3)
    axes.legend(fontsize=7, ncol=2)
    figure.tight_layout()
    figure.savefig(path, **SAVE)
    plt.close(figure)


def memory_per_format(ok: pd.DataFrame, path: Path) -> None:
    """Memory growth per format/precision/device at the largest batch size, one bar group per image size."""
    data = ok[(ok["batch_size"] == ok["batch_size"].max())].dropna(subset=["memory_mb"])
    data = data[data["loader"] == ("dummy" if (data["loader"] == "dummy").any() else data["loader"].iloc[0])]
    table = data.assign(series=data.apply(_series_label, axis=1)).pivot_table(
        index="series", columns="image_size", values="memory_mb", aggfunc="first").sort_index()
    figure, axes = plt.subplots(figsize=(8, 4.2))
    table.plot.barh(ax=axes)
    axes.set_xlabel("MB over baseline (CPU: process RSS; CUDA: device memory in use)")
    axes.set_ylabel("")
    axes.set_title(f"Peak memory growth, batch {int(ok['batch_size'].max())}")
    axes.legend(title="image size", fontsize=7)
    axes.grid(alpha=0.3, axis="x")
    figure.tight_layout()
    figure.savefig(path, **SAVE)
    plt.close(figure)


def best_per_format_across_hosts(best: pd.DataFrame, path: Path) -> None:
    """Cross-hardware: best throughput of each format on each host."""
    table = best.pivot_table(index="format", columns="host", values="model_fps", aggfunc="max").sort_index()
    figure, axes = plt.subplots(figsize=(8, 4.2))
    table.plot.bar(ax=axes)
    axes.set_ylabel("best images / s (model time)")
    axes.set_title("Best configuration of each format, per machine")
    axes.grid(alpha=0.3, axis="y")
    figure.tight_layout()
    figure.savefig(path, **SAVE)
    plt.close(figure)
