"""Plots (matplotlib, Agg, no timestamps in the files so the same data gives the same bytes).

Each drawing function takes the rows it needs and a path, draws only when it has data, and says whether it
did. PER_SIZE figures are drawn for every image size of a machine, PER_HOST figures once per machine.

Made to be read: plain numbers on every axis ("20", "1,000", never "2×10¹"), at least four labelled ticks where
the data allows, a log axis only where the values span more than a factor LOG_ABOVE, axes that span the data
(a bar axis starts well below its smallest bar, a linear one at zero), values written on the bars, and one style
per series: a colour per format, a marker and a line style per precision and device, so no two series share
both (not matplotlib's ten-colour cycle, which gave eleven lines ten colours)."""
from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.patches import Patch  # noqa: E402
from matplotlib.ticker import FixedLocator, FuncFormatter, MaxNLocator, NullFormatter, NullLocator  # noqa: E402

from fmtbench.report.findings import precision_label  # noqa: E402

SAVE = {"dpi": 110, "metadata": {"Software": None}}
# Values spanning more than this factor get a log axis; fewer get a linear one (a log axis over 14-30 shows
# one decade's fraction with hardly a tick).
LOG_ABOVE = 8.0
# tab10, then ten more that none of them resembles: a colour per format, up to twenty formats.
COLOURS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22",
           "#17becf", "#000000", "#b8860b", "#000080", "#2e8b57", "#ff00ff", "#00ced1", "#800000", "#808000",
           "#4b0082", "#ff6347"]
MARKERS = ["o", "s", "^", "D", "v", "P", "X", "*"]
LINESTYLES = ["-", "--", ":", "-."]
# Per real loader: (its run's model figure, its end-to-end figure).
LOADER_COLOURS = {"real": ("#9ecae1", "#08519c"), "real_gpu_decode": ("#fdd0a2", "#a63603")}
OTHER_LOADER_COLOURS = ("#d9d9d9", "#525252")


# --- series and their styles --------------------------------------------------------------------------------

def _variant(row) -> str:
    """The precision and device part of a series' name: "fp16 cuda", "fp32 TF32 cuda", "fp32 cpu"."""
    precision = "fp32 TF32" if precision_label(row) == "fp32 with TF32" else row["precision"]
    return f"{precision} {row['device']}"


def _series(row) -> str:
    return f"{row['format']} {_variant(row)}"


def _with_series(rows: pd.DataFrame) -> pd.DataFrame:
    if rows.empty:
        return rows.assign(series=pd.Series(dtype=str), variant=pd.Series(dtype=str))
    return rows.assign(series=rows.apply(_series, axis=1), variant=rows.apply(_variant, axis=1))


def _styles(rows: pd.DataFrame) -> dict[str, dict]:
    """series -> colour, marker and line style: colour by format, marker and line style by precision and device.
    Two series differ in one of the two, so they never share colour and marker."""
    pairs = rows[["series", "format", "variant"]].drop_duplicates().sort_values("series")
    formats = sorted(pairs["format"].unique())
    variants = sorted(pairs["variant"].unique())
    styles = {}
    for row in pairs.itertuples():
        f, v = formats.index(row.format), variants.index(row.variant)
        # past twenty formats the colours repeat: the marker then shifts, so the pair stays unique
        styles[row.series] = {"color": COLOURS[f % len(COLOURS)],
                              "marker": MARKERS[(v + f // len(COLOURS)) % len(MARKERS)],
                              "linestyle": LINESTYLES[v % len(LINESTYLES)]}
    return styles


# --- axes --------------------------------------------------------------------------------------------------

def _plain(value, _position=None) -> str:
    """A tick label as a reader writes it, saying the tick's value: 0.5, 2, 20, 10.5, 1,000, 52,000 (not rounded to
    a whole number: ticks at 10.5 and 13.5 read "10" and "14")."""
    if value == 0:
        return "0"
    decimals = next((d for d in range(7) if abs(round(value, d) - value) <= 1e-9 * abs(value)), 6)
    return f"{value:,.{decimals}f}"


def _value_text(value: float) -> str:
    """A value written on a bar: three significant digits below 1,000 (27.1, 128), whole numbers above."""
    return f"{value:,.0f}" if abs(value) >= 999.5 else f"{value:#.3g}".rstrip(".")


TICK_STEPS = [(1,), (1, 3), (1, 2, 5), (1, 1.5, 2, 3, 5, 7), (1, 1.2, 1.5, 2, 2.5, 3, 4, 5, 6, 7, 8, 9)]


def _log_ticks(low: float, high: float, least: int = 4) -> list[float]:
    """Round values between `low` and `high`, the sparsest set of them that gives at least `least` ticks."""
    ticks: list[float] = []
    for steps in TICK_STEPS:
        ticks = [round(step * 10 ** exponent, 10)
                 for exponent in range(math.floor(math.log10(low)) - 1, math.ceil(math.log10(high)) + 1)
                 for step in steps if low <= step * 10 ** exponent <= high]
        if len(ticks) >= least:
            break
    return ticks


def _nice_below(value: float) -> float:
    """The largest of 1, 2, 5 × 10^k at or below `value`."""
    exponent = math.floor(math.log10(value))
    return max(step * 10 ** exponent for step in (1, 2, 5) if step * 10 ** exponent <= value)


def _value_axis(axes, values, which: str, bars: bool = False, zero: bool = False) -> bool:
    """Scale, limits and plain labelled ticks of the value axis (`which`: "x" or "y"); returns whether it is log.
    Lines: the axis spans the data with a margin; bars: a linear axis starts at zero, a log one at a round value
    at most a quarter of the smallest bar, so every bar has a visible length; `zero`: a linear axis from zero."""
    values = [float(v) for v in values if v is not None and not pd.isna(v) and v > 0]
    set_scale, set_limits = getattr(axes, f"set_{which}scale"), getattr(axes, f"set_{which}lim")
    axis = axes.xaxis if which == "x" else axes.yaxis
    if not values:
        return False
    low, high = min(values), max(values)
    if high / low > LOG_ABOVE:
        set_scale("log")
        bottom = _nice_below(low / 4) if bars else low / 1.3
        top = high * (2.5 if bars else 1.3)  # bars: room for the value written at their end
        set_limits(bottom, top)
        ticks = _log_ticks(bottom, top)
        axis.set_major_locator(FixedLocator(sorted({bottom, *ticks}) if bars else ticks))  # a bar axis says its start
        axis.set_minor_locator(NullLocator())
        axis.set_major_formatter(FuncFormatter(_plain))
        axis.set_minor_formatter(NullFormatter())
        return True
    if bars or zero:
        set_limits(0, high * (1.3 if bars else 1.1))
    else:
        margin = (high - low) * 0.1 or high * 0.05
        set_limits(max(0.0, low - margin), high + margin)
    axis.set_major_locator(MaxNLocator(nbins=7, min_n_ticks=4))
    axis.set_major_formatter(FuncFormatter(_plain))
    return False


def _category_axis(axes, values, which: str = "x") -> None:
    """The batch sizes or image sizes measured, each labelled; a log2 axis where they span a factor 8 or more."""
    values = sorted({int(v) for v in values})
    axis = axes.xaxis if which == "x" else axes.yaxis
    if len(values) > 1 and values[-1] / values[0] >= 8:
        getattr(axes, f"set_{which}scale")("log", base=2)
        axis.set_minor_locator(NullLocator())
    if len(values) > 1:
        span = values[-1] - values[0]
        margin = span * 0.06 if values[-1] / values[0] < 8 else 0
        getattr(axes, f"set_{which}lim")(values[0] / (1.15 if margin == 0 else 1) - margin,
                                         values[-1] * (1.15 if margin == 0 else 1) + margin)
    axis.set_major_locator(FixedLocator(values))
    axis.set_major_formatter(FuncFormatter(lambda v, _p: f"{v:.0f}"))


def _save(figure, axes, path: Path, title: str, legend_title: str | None = None, handles=None) -> bool:
    axes.set_title(title, fontsize=10)
    axes.grid(alpha=0.3, which="major")
    handles = handles if handles is not None else axes.get_legend_handles_labels()[0]
    if handles:  # beside the axes, never over a bar or a line
        axes.legend(handles=handles, fontsize=7, title=legend_title, title_fontsize=7, loc="upper left",
                    bbox_to_anchor=(1.01, 1), borderaxespad=0)
    figure.tight_layout()
    figure.savefig(path, bbox_inches="tight", **SAVE)
    plt.close(figure)
    return True


def _lines(rows: pd.DataFrame, x: str, y: str, path: Path, title: str, xlabel: str, ylabel: str,
           zero: bool = False, reference: float | None = None) -> bool:
    """One line per series (styled by _styles) of `y` against `x`."""
    rows = rows.dropna(subset=[y])
    rows = rows if "series" in rows else _with_series(rows)
    if rows.empty:
        return False
    styles = _styles(rows)
    figure, axes = plt.subplots(figsize=(7.5, 4.5))
    for series, group in rows.groupby("series", sort=True):
        group = group.sort_values(x)
        axes.plot(group[x], group[y], label=series, markersize=6, linewidth=1.4, **styles[series])
    values = list(rows[y]) + ([reference] if reference is not None else [])
    _value_axis(axes, values, "y", zero=zero)
    if reference is not None:
        axes.axhline(reference, color="black", linewidth=0.8)
    _category_axis(axes, rows[x])
    axes.set_xlabel(xlabel)
    axes.set_ylabel(ylabel)
    return _save(figure, axes, path, title)


def _labelled_bars(axes, positions, values, log: bool, **style) -> None:
    """Horizontal bars with their value written at their end."""
    bars = axes.barh(positions, values, **style)
    for bar, value in zip(bars, values):
        end = bar.get_width()
        axes.text(end * 1.04 if log else end + axes.get_xlim()[1] * 0.01, bar.get_y() + bar.get_height() / 2,
                  _value_text(value), va="center", fontsize=7)


def _hbars(values: pd.Series, styles: dict, path: Path, title: str, xlabel: str,
           reference: float | None = None) -> bool:
    """One labelled horizontal bar per series, largest on top, in its series' colour."""
    values = values.dropna().sort_values()
    if values.empty:
        return False
    figure, axes = plt.subplots(figsize=(7.5, 1.0 + 0.32 * len(values)))
    log = _value_axis(axes, list(values) + ([reference] if reference is not None else []), "x", bars=True)
    positions = range(len(values))
    _labelled_bars(axes, positions, list(values), log, color=[styles[s]["color"] for s in values.index],
                   height=0.7)
    axes.set_yticks(list(positions), list(values.index), fontsize=8)
    if reference is not None:
        axes.axvline(reference, color="black", linewidth=0.8)
    axes.set_xlabel(xlabel)
    return _save(figure, axes, path, title, handles=[])


# --- the figures -------------------------------------------------------------------------------------------

def throughput_vs_batch(rows: pd.DataFrame, size: int, path: Path) -> bool:
    """Model throughput vs batch size, one line per format/precision/device, dummy loader."""
    dummy = rows[rows["loader"] == "dummy"]
    if dummy.empty:
        return False
    return _lines(dummy, "batch_size", "throughput_fps", path,
                  f"Model throughput vs batch size, {size}×{size}, dummy loader", "batch size",
                  "images / s (calls back to back)")


def end_to_end(rows: pd.DataFrame, size: int, path: Path) -> bool:
    """At the largest batch, each real-loader row's end-to-end throughput beside the model throughput measured in
    the same processes (its own `model_fps_under_load`, from CUDA events on its stream, never another row's):
    where the end-to-end figure is above its own
    model figure, its bar is hatched and says so (the table's ^)."""
    largest = rows[rows["batch_size"] == rows["batch_size"].max()]
    real = sorted(largest.loc[largest["timing_kind"].eq("under_load"), "loader"].unique())
    if not real:
        return False
    table = _with_series(largest[largest["loader"].isin(real)].dropna(subset=["e2e_fps", "model_fps_under_load"]))
    if table.empty:
        return False
    table = table.sort_values(["series", "loader"], ascending=False)
    entries = list(table.itertuples())
    figure, axes = plt.subplots(figsize=(8.5, 1.2 + 0.55 * len(entries)))
    log = _value_axis(axes, list(table["model_fps_under_load"]) + list(table["e2e_fps"]), "x", bars=True)
    above_any = False
    for index, entry in enumerate(entries):
        model_colour, e2e_colour = LOADER_COLOURS.get(entry.loader, OTHER_LOADER_COLOURS)
        _labelled_bars(axes, [index + 0.2], [entry.model_fps_under_load], log, height=0.38, color=model_colour)
        above = entry.e2e_fps > entry.model_fps_under_load
        above_any |= above
        axes.barh([index - 0.2], [entry.e2e_fps], height=0.38, color=e2e_colour,
                  hatch="////" if above else None, edgecolor="#d62728" if above else e2e_colour)
        text = _value_text(entry.e2e_fps) + ("  ^ above its own model figure" if above else "")
        axes.text(entry.e2e_fps * 1.04 if log else entry.e2e_fps + axes.get_xlim()[1] * 0.01, index - 0.2, text,
                  va="center", fontsize=7, color="#d62728" if above else "black")
    axes.set_yticks(range(len(entries)), [f"{e.series}\n{e.loader} loader" for e in entries], fontsize=8)
    axes.set_ylim(-0.7, len(entries) - 0.3)
    axes.set_xlabel("images / s")
    handles = []
    for name in real:
        model_colour, e2e_colour = LOADER_COLOURS.get(name, OTHER_LOADER_COLOURS)
        handles += [Patch(color=model_colour, label=f"model under load, same {name} run"),
                    Patch(color=e2e_colour, label=f"end-to-end, {name} loader")]
    if above_any:
        handles.append(Patch(facecolor="white", edgecolor="#d62728", hatch="////",
                             label="end-to-end above its own model figure (^)"))
    return _save(figure, axes, path, f"End-to-end vs model throughput of the same runs, {size}×{size}, batch "
                                     f"{int(largest['batch_size'].iloc[0])}", handles=handles)


def _per_size(rows: pd.DataFrame, column: str, aggregate: str, path: Path, title: str, ylabel: str,
              reference: float | None = None) -> bool:
    """Lines over the image sizes; with one size, a labelled bar per series."""
    rows = _with_series(rows.dropna(subset=[column]))
    if rows.empty:
        return False
    table = rows.groupby(["series", "format", "variant", "image_size"], sort=True)[column].agg(aggregate)
    table = table.reset_index()
    if table["image_size"].nunique() > 1:
        return _lines(table, "image_size", column, path, title, "image size (pixels per side)", ylabel,
                      reference=reference)
    size = int(table["image_size"].iloc[0])
    return _hbars(table.set_index("series")[column], _styles(table), path, f"{title}, {size}×{size}", ylabel,
                  reference=reference)


def fastest_per_size(rows: pd.DataFrame, path: Path) -> bool:
    """Best model throughput (dummy loader) of each format and precision at each image size, per device."""
    dummy = rows[rows["loader"] == "dummy"]
    if dummy.empty:
        return False
    return _per_size(dummy, "throughput_fps", "max", path,
                     "Fastest configuration of each format per image size (dummy loader)",
                     "best images / s over batch sizes (back to back)")


def memory_vs_batch(rows: pd.DataFrame, path: Path) -> bool:
    """Memory growth vs batch size at the largest image size, dummy loader, one line per format."""
    dummy = rows[(rows["loader"] == "dummy")].dropna(subset=["memory_mb"])
    if dummy.empty:
        return False
    size = int(dummy["image_size"].max())
    return _lines(dummy[dummy["image_size"] == size], "batch_size", "memory_mb", path,
                  f"Peak memory growth vs batch size, {size}×{size}, dummy loader\n"
                  "(CUDA: device memory in use; CPU: process resident set)", "batch size", "MB over the baseline",
                  zero=True)


def speedup_per_size(rows: pd.DataFrame, path: Path) -> bool:
    """Median speedup over the baseline of each format/precision/device per image size (dummy loader)."""
    dummy = rows[rows["loader"] == "dummy"].dropna(subset=["speedup"])
    if dummy.empty:
        return False
    return _per_size(dummy, "speedup", "median", path,
                     "Speedup over the baseline, same device, size, batch (dummy loader)",
                     "speedup (median over batch sizes)", reference=1.0)


def best_per_format_across_hosts(best: pd.DataFrame, path: Path) -> bool:
    """Cross-hardware: best throughput of each format on each host, a labelled bar per machine."""
    table = best.pivot_table(index="format", columns="host", values="throughput_fps", aggfunc="max").sort_index()
    hosts = list(table.columns)
    figure, axes = plt.subplots(figsize=(8, 1.2 + 0.3 * len(hosts) * len(table)))
    log = _value_axis(axes, table.to_numpy().ravel(), "x", bars=True)
    height = 0.8 / len(hosts)
    for index, host in enumerate(hosts):
        present = table[host].dropna()
        positions = [table.index.get_loc(name) + (index - (len(hosts) - 1) / 2) * height for name in present.index]
        _labelled_bars(axes, positions, list(present), log, height=height, color=COLOURS[index % len(COLOURS)],
                       label=host)
    axes.set_yticks(range(len(table)), list(table.index), fontsize=8)
    axes.invert_yaxis()
    axes.set_xlabel("best images / s (model, back to back)")
    return _save(figure, axes, path, "Best configuration of each format, per machine", legend_title="machine")


PER_SIZE = {"throughput": throughput_vs_batch, "end_to_end": end_to_end}
PER_HOST = {"fastest": fastest_per_size, "memory": memory_vs_batch, "speedup": speedup_per_size}
