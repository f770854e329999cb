"""Plots (matplotlib, Agg, no timestamps in the files so the same data gives the same bytes).

Each drawing function takes the rows it needs and a path, draws only when it has data, and says whether it
did. PER_SIZE figures are drawn for every image size of a machine, PER_HOST figures once per machine.

Made to be read: axes as report.axes draws them, values written on the bars, the tables' § and ‡ drawn too (a
ring around a marked point, a marked bar hatched, named in the legend), and one style per series: a colour per
format, a marker and a line style per precision and device, so no two series share both (not matplotlib's
ten-colour cycle, which gave eleven lines ten colours)."""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402
from matplotlib.patches import Patch  # noqa: E402

from fmtbench.report import marks  # noqa: E402
from fmtbench.report.axes import category_axis, value_axis, value_text  # noqa: E402
from fmtbench.report.labels import precision_label  # noqa: E402
from fmtbench.scope import Scope

SAVE = {"dpi": 110, "metadata": {"Software": None}}
# tab10, then ten more that none of them resembles: a colour per format, up to twenty formats.
COLOURS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22",
           "#17becf", "#000000", "#b8860b", "#000080", "#2e8b57", "#ff00ff", "#00ced1", "#800000", "#808000",
           "#4b0082", "#ff6347"]
MARKERS = ["o", "s", "^", "D", "v", "P", "X", "*"]
LINESTYLES = ["-", "--", ":", "-."]
# Per real loader: (its run's model figure, its end-to-end figure).
LOADER_COLOURS = {"real": ("#9ecae1", "#08519c"), "real_gpu_decode": ("#fdd0a2", "#a63603")}
OTHER_LOADER_COLOURS = ("#d9d9d9", "#525252")
# The tables' marks the plots draw too: mark -> (the row's flag, its colour, the ring around a marked point). A
# point drawn from several rows (a best or a median over batch sizes) is marked where one of them is; a marked bar
# is hatched and carries the mark beside its value; the legend names each mark drawn.
PLOT_MARKS = {"§": ("contended", "#d62728", "o"), "‡": ("unstable", "#444444", "s")}


# --- series and their styles --------------------------------------------------------------------------------

def _variant(row) -> str:
    """The precision and device part of a series' name: "fp16 cuda", "fp32 TF32 cuda", "fp32 cpu"."""
    precision = "fp32 TF32" if precision_label(row) == "fp32 with TF32" else row["precision"]
    return f"{precision} {row['device']}"


def _series(row) -> str:
    return f"{row['format']} {_variant(row)}"


def with_series(rows: pd.DataFrame) -> pd.DataFrame:
    if rows.empty:
        return rows.assign(series=pd.Series(dtype=str), variant=pd.Series(dtype=str))
    return rows.assign(series=rows.apply(_series, axis=1), variant=rows.apply(_variant, axis=1))


def styles(rows: pd.DataFrame) -> dict[str, dict]:
    """series -> colour, marker and line style: colour by format, marker and line style by precision and device.
    Two series differ in one of the two, so they never share colour and marker."""
    pairs = rows[["series", "format", "variant"]].drop_duplicates().sort_values("series")
    formats = sorted(pairs["format"].unique())
    variants = sorted(pairs["variant"].unique())
    chosen = {}
    for row in pairs.itertuples():
        f, v = formats.index(row.format), variants.index(row.variant)
        # past twenty formats the colours repeat: the marker then shifts, so the pair stays unique
        chosen[row.series] = {"color": COLOURS[f % len(COLOURS)],
                              "marker": MARKERS[(v + f // len(COLOURS)) % len(MARKERS)],
                              "linestyle": LINESTYLES[v % len(LINESTYLES)]}
    return chosen


def _marks_of(rows: pd.DataFrame) -> pd.Series:
    """Each row's marks that the plots draw ("§", "§‡", "")."""
    flags = {mark: marks.flagged(rows, column) for mark, (column, _, _) in PLOT_MARKS.items()}
    return pd.Series(["".join(mark for mark, on in flags.items() if on[index]) for index in rows.index],
                     index=rows.index, dtype=object)


def _mark_handles(drawn: str, bars: bool = False) -> list:
    """Legend entries naming the marks drawn: a ring (points) or a hatched bar."""
    handles = []
    for mark, (_, colour, ring) in PLOT_MARKS.items():
        if mark in drawn:
            label = f"{mark} {marks.LEFT_OUT[mark]}"
            handles.append(Patch(facecolor="white", edgecolor=colour, hatch="//", label=label) if bars else
                           Line2D([], [], marker=ring, markersize=11, markerfacecolor="none", markeredgecolor=colour,
                                  markeredgewidth=1.4, linestyle="none", label=label))
    return handles


def save(figure, axes, path: Path, title: str, legend_title: str | None = None, handles=None) -> bool:
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
    rows = rows if "series" in rows else with_series(rows)
    if rows.empty:
        return False
    style_of = styles(rows)
    figure, axes = plt.subplots(figsize=(7.5, 4.5))
    for series, group in rows.groupby("series", sort=True):
        group = group.sort_values(x)
        axes.plot(group[x], group[y], label=series, markersize=6, linewidth=1.4, **style_of[series])
    drawn = _marks_of(rows)
    for mark, (_, colour, ring) in PLOT_MARKS.items():
        hit = rows[drawn.str.contains(mark, regex=False)]
        if not hit.empty:
            axes.plot(hit[x], hit[y], marker=ring, markersize=13, markerfacecolor="none", markeredgecolor=colour,
                      markeredgewidth=1.4, linestyle="none")
    values = list(rows[y]) + ([reference] if reference is not None else [])
    value_axis(axes, values, "y", zero=zero)
    if reference is not None:
        axes.axhline(reference, color="black", linewidth=0.8)
    category_axis(axes, rows[x])
    axes.set_xlabel(xlabel)
    axes.set_ylabel(ylabel)
    handles = axes.get_legend_handles_labels()[0] + _mark_handles("".join(drawn))
    return save(figure, axes, path, title, handles=handles)


def _labelled_bars(axes, positions, values, log: bool, drawn=None, **style) -> None:
    """Horizontal bars with their value written at their end; `drawn`: each bar's marks (hatched, beside its
    value)."""
    bars = axes.barh(positions, values, **style)
    for bar, value, mark in zip(bars, values, drawn if drawn is not None else [""] * len(values)):
        end = bar.get_width()
        if mark:
            bar.set_hatch("//")
            bar.set_edgecolor(PLOT_MARKS[mark[0]][1])
        axes.text(end * 1.04 if log else end + axes.get_xlim()[1] * 0.01, bar.get_y() + bar.get_height() / 2,
                  value_text(value) + (f" {mark}" if mark else ""), va="center", fontsize=7)


def _hbars(table: pd.DataFrame, column: str, path: Path, title: str, xlabel: str,
           reference: float | None = None) -> bool:
    """One labelled horizontal bar per series (`table`'s rows, their `column`), largest on top, in its series'
    colour."""
    table = table.dropna(subset=[column]).sort_values(column)
    if table.empty:
        return False
    style_of, values = styles(table), list(table[column])
    figure, axes = plt.subplots(figsize=(7.5, 1.0 + 0.32 * len(table)))
    log = value_axis(axes, values + ([reference] if reference is not None else []), "x", bars=True)
    positions = range(len(table))
    drawn = list(_marks_of(table))
    _labelled_bars(axes, positions, values, log, drawn, color=[style_of[s]["color"] for s in table["series"]],
                   height=0.7)
    axes.set_yticks(list(positions), list(table["series"]), fontsize=8)
    if reference is not None:
        axes.axvline(reference, color="black", linewidth=0.8)
    axes.set_xlabel(xlabel)
    return save(figure, axes, path, title, handles=_mark_handles("".join(drawn), bars=True))


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
    real = sorted(largest.loc[largest["timing_kind"].eq(Scope.END_TO_END.value), "loader"].unique())
    if not real:
        return False
    table = with_series(largest[largest["loader"].isin(real)].dropna(subset=["e2e_fps", "model_fps_under_load"]))
    if table.empty:
        return False
    table = table.sort_values(["series", "loader"], ascending=False)
    entries = list(table.itertuples())
    figure, axes = plt.subplots(figsize=(8.5, 1.2 + 0.55 * len(entries)))
    log = value_axis(axes, list(table["model_fps_under_load"]) + list(table["e2e_fps"]), "x", bars=True)
    above_any, drawn = False, list(_marks_of(table))
    for index, entry in enumerate(entries):
        model_colour, e2e_colour = LOADER_COLOURS.get(entry.loader, OTHER_LOADER_COLOURS)
        _labelled_bars(axes, [index + 0.2], [entry.model_fps_under_load], log, height=0.38, color=model_colour)
        above = entry.e2e_fps > entry.model_fps_under_load
        above_any |= above
        axes.barh([index - 0.2], [entry.e2e_fps], height=0.38, color=e2e_colour,
                  hatch="////" if above else None, edgecolor="#d62728" if above else e2e_colour)
        text = (value_text(entry.e2e_fps) + (f" {drawn[index]}" if drawn[index] else "")
                + ("  ^ above its own model figure" if above else ""))
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
    handles += [Patch(facecolor="white", edgecolor="white", label=f"{mark} beside a value: {marks.LEFT_OUT[mark]}")
                for mark in PLOT_MARKS if mark in "".join(drawn)]
    return save(figure, axes, path, f"End-to-end vs model throughput of the same runs, {size}×{size}, batch "
                                     f"{int(largest['batch_size'].iloc[0])}", handles=handles)


def _per_size(rows: pd.DataFrame, column: str, aggregate: str, path: Path, title: str, ylabel: str,
              reference: float | None = None) -> bool:
    """Lines over the image sizes; with one size, a labelled bar per series."""
    rows = with_series(rows.dropna(subset=[column]))
    if rows.empty:
        return False
    flags = {flag: marks.flagged(rows, flag) for flag, _, _ in PLOT_MARKS.values()}
    table = rows.assign(**flags).groupby(["series", "format", "variant", "image_size"], sort=True).agg(
        {column: aggregate, **{flag: "any" for flag in flags}}).reset_index()
    if table["image_size"].nunique() > 1:
        return _lines(table, "image_size", column, path, title, "image size (pixels per side)", ylabel,
                      reference=reference)
    size = int(table["image_size"].iloc[0])
    return _hbars(table, column, path, f"{title}, {size}×{size}", ylabel, reference=reference)


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
    what = {"cuda": "CUDA: device memory in use", "cpu": "CPU: process resident set"}
    return _lines(dummy[dummy["image_size"] == size], "batch_size", "memory_mb", path,
                  f"Peak memory growth vs batch size, {size}×{size}, dummy loader\n("
                  + "; ".join(what[device] for device in sorted(set(dummy["device"]), reverse=True)) + ")",
                  "batch size", "MB over the baseline", zero=True)


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
    log = value_axis(axes, table.to_numpy().ravel(), "x", bars=True)
    height = 0.8 / len(hosts)
    for index, host in enumerate(hosts):
        present = table[host].dropna()
        positions = [table.index.get_loc(name) + (index - (len(hosts) - 1) / 2) * height for name in present.index]
        _labelled_bars(axes, positions, list(present), log, height=height, color=COLOURS[index % len(COLOURS)],
                       label=host)
    axes.set_yticks(range(len(table)), list(table.index), fontsize=8)
    axes.invert_yaxis()
    axes.set_xlabel("best images / s (model, back to back)")
    return save(figure, axes, path, "Best configuration of each format, per machine", legend_title="machine")


PER_SIZE = {"throughput": throughput_vs_batch, "end_to_end": end_to_end}
PER_HOST = {"fastest": fastest_per_size, "memory": memory_vs_batch, "speedup": speedup_per_size}
