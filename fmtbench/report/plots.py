"""Plots (matplotlib, Agg, no timestamps in the files so the same data gives the same bytes).

Each drawing function takes the rows it needs and a path, draws only when it has data, and says whether it
did. PER_SIZE figures are drawn for every image size of a machine, PER_HOST figures once per machine."""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from fmtbench import data  # noqa: E402
from fmtbench.report.findings import precision_label  # noqa: E402

SAVE = {"dpi": 110, "metadata": {"Software": None}}


def _series(row) -> str:
    precision = "fp32 TF32" if precision_label(row) == "fp32 with TF32" else row["precision"]
    return f"{row['format']} {precision} {row['device']}"


def _with_series(rows: pd.DataFrame) -> pd.DataFrame:
    return rows.assign(series=rows.apply(_series, axis=1))


def _save(figure, axes, path: Path, title: str, legend_title: str | None = None) -> bool:
    axes.set_title(title, fontsize=10)
    axes.grid(alpha=0.3, which="both")
    handles, _ = axes.get_legend_handles_labels()
    if handles:  # beside the axes, never over a bar or a line
        axes.legend(fontsize=7, title=legend_title, title_fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1),
                    borderaxespad=0)
    figure.tight_layout()
    figure.savefig(path, bbox_inches="tight", **SAVE)
    plt.close(figure)
    return True


def throughput_vs_batch(rows: pd.DataFrame, size: int, path: Path) -> bool:
    """Model throughput vs batch size, one line per format/precision/device, dummy loader, log scale."""
    dummy = rows[rows["loader"] == "dummy"]
    if dummy.empty:
        return False
    figure, axes = plt.subplots(figsize=(7.5, 4.5))
    for series, group in _with_series(dummy).groupby("series", sort=True):
        group = group.sort_values("batch_size")
        axes.plot(group["batch_size"], group["throughput_fps"], marker="o", label=series)
    axes.set_yscale("log")
    axes.set_xlabel("batch size")
    axes.set_ylabel("images / s (median model time)")
    return _save(figure, axes, path, f"Model throughput vs batch size, {size}×{size}, dummy loader")


def end_to_end(rows: pd.DataFrame, size: int, path: Path) -> bool:
    """At the largest batch: model throughput (dummy) beside end-to-end throughput of each real loader."""
    largest = rows[rows["batch_size"] == rows["batch_size"].max()]
    real = [name for name in sorted(largest["loader"].unique()) if data.loader(name).end_to_end]
    if not real:
        return False
    table = _with_series(largest)
    bars = pd.DataFrame()
    for name in real:  # each real-loader row beside the model figure of its own run
        rows = table[table["loader"] == name].set_index("series")
        bars[f"model under load, {name}"] = rows["model_fps_under_load"]
        bars[f"end-to-end, {name}"] = rows["e2e_fps"]
    figure, axes = plt.subplots(figsize=(8.5, 4.8))
    bars.sort_index().plot.barh(ax=axes)
    axes.set_xscale("log")
    axes.set_xlabel("images / s")
    axes.set_ylabel("")
    return _save(figure, axes, path, f"Model vs end-to-end throughput, {size}×{size}, batch "
                                     f"{int(largest['batch_size'].iloc[0])}")


def fastest_per_size(rows: pd.DataFrame, path: Path) -> bool:
    """Best model throughput (dummy loader) of each format and precision at each image size, per device."""
    dummy = _with_series(rows[rows["loader"] == "dummy"])
    if dummy.empty:
        return False
    table = dummy.pivot_table(index="image_size", columns="series", values="throughput_fps", aggfunc="max")
    figure, axes = plt.subplots(figsize=(9, 4.8))
    table.plot.bar(ax=axes, rot=0)
    axes.set_yscale("log")
    axes.set_xlabel("image size")
    axes.set_ylabel("best images / s over batch sizes (model time)")
    return _save(figure, axes, path, "Fastest configuration of each format per image size (dummy loader)")


def memory_vs_batch(rows: pd.DataFrame, path: Path) -> bool:
    """Memory growth vs batch size at the largest image size, dummy loader, one line per format."""
    dummy = rows[(rows["loader"] == "dummy")].dropna(subset=["memory_mb"])
    if dummy.empty:
        return False
    size = int(dummy["image_size"].max())
    dummy = _with_series(dummy[dummy["image_size"] == size])
    figure, axes = plt.subplots(figsize=(7.5, 4.5))
    for series, group in dummy.groupby("series", sort=True):
        group = group.sort_values("batch_size")
        axes.plot(group["batch_size"], group["memory_mb"], marker="o", label=series)
    axes.set_xlabel("batch size")
    axes.set_ylabel("MB over the baseline")
    return _save(figure, axes, path, f"Peak memory growth vs batch size, {size}×{size}, dummy loader\n"
                                     "(CUDA: device memory in use; CPU: process resident set)")


def speedup_per_size(rows: pd.DataFrame, path: Path) -> bool:
    """Median speedup over the baseline of each format/precision/device per image size (dummy loader)."""
    dummy = _with_series(rows[rows["loader"] == "dummy"].dropna(subset=["speedup"]))
    if dummy.empty:
        return False
    table = dummy.pivot_table(index="image_size", columns="series", values="speedup", aggfunc="median")
    figure, axes = plt.subplots(figsize=(9, 4.8))
    table.plot.bar(ax=axes, rot=0)
    axes.axhline(1.0, color="black", linewidth=0.8)
    axes.set_xlabel("image size")
    axes.set_ylabel("speedup (median over batch sizes)")
    return _save(figure, axes, path, "Speedup over the baseline, same device, size, batch (dummy loader)")


def best_per_format_across_hosts(best: pd.DataFrame, path: Path) -> bool:
    """Cross-hardware: best throughput of each format on each host."""
    table = best.pivot_table(index="format", columns="host", values="throughput_fps", aggfunc="max").sort_index()
    figure, axes = plt.subplots(figsize=(8, 4.2))
    table.plot.bar(ax=axes)
    axes.set_yscale("log")
    axes.set_ylabel("best images / s (model time)")
    return _save(figure, axes, path, "Best configuration of each format, per machine")


PER_SIZE = {"throughput": throughput_vs_batch, "end_to_end": end_to_end}
PER_HOST = {"fastest": fastest_per_size, "memory": memory_vs_batch, "speedup": speedup_per_size}
