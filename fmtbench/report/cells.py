"""The results tables' cells: each figure as the tables write it, with the marks that tell its row apart (a mark
that every row of its kind carries is left out: marks.on_every_row), and the tables themselves, as Markdown for
report.md and as HTML for the HTML report's items."""
from __future__ import annotations

import html
from pathlib import Path

import pandas as pd

from fmtbench.atomic import atomic_path
from fmtbench.report import items, loaders
from fmtbench.report.labels import is_set
from fmtbench.report.marks import E2E_MARKS, MODEL_MARKS, host_range, on_every_row, split
from fmtbench.scope import Scope

# Two tables per image size, so that every column means one thing: the model alone (dummy loader) and end to
# end (real loaders, each with the model figure of its own run). The seed study's names are in the legend.
COLUMNS = {
    Scope.MODEL_ALONE: {
        "format": "format", "device": "device", "precision_label": "precision", "batch_size": "batch",
        "latency_text": "latency p50 (ms)", "device_ms_text": "device time (ms)",
        "latency_p99_text": "p99 (ms)", "spread_text": "spread (processes)",
        "throughput_text": "throughput (img/s)",
        "speedup_text": "speedup", "memory_text": "memory (MB)", "rel_error": "rel. error",
    },
    Scope.END_TO_END: {
        "format": "format", "device": "device", "precision_label": "precision", "loader": "loader",
        "batch_size": "batch", "e2e_text": "end-to-end (img/s)", "capacity_text": "decode capacity (img/s)",
        "bound_text": "bound (e2e / capacity)",
        "under_load_text": "model under load (ms)", "under_load_fps_text": "model under load (img/s)",
        "spread_text": "spread (processes)", "memory_text": "memory (MB)",
        "loader_memory_text": "of which the loader (MB)",
        "rel_error": "rel. error",
    },
}
# Columns a table has only where one of its rows has such a figure (a CPU-only study has no device time).
OPTIONAL_COLUMNS = {"device_ms_text": lambda rows: rows["device"].eq("cuda").any(),
                    "loader_memory_text": lambda rows: rows.get("loader_memory_mb", pd.Series(dtype=float))
                    .notna().any()}
WARNING_STYLE = "border:2px solid #c60;background:#fff3e0;padding:6px 10px;font:13px sans-serif"
TABLE_STYLE = ("table{border-collapse:collapse;font:13px sans-serif}th,td{padding:3px 8px;text-align:right;"
               "border-bottom:1px solid #ddd}th{background:#f3f3f3}")


def ms(value: float) -> str:
    return f"{value:.1f}" if value >= 100 else f"{value:.3g}"


def row_marks(row, which: dict[str, str] = MODEL_MARKS, omit=frozenset()) -> str:
    """` ‡§`: the marks of `which` whose flag the row has set, but those in `omit`; nothing where none."""
    marks = "".join(mark for mark, column in which.items() if mark not in omit and is_set(row.get(column)))
    return f" {marks}" if marks else ""


def speedup_text(row, omit=frozenset()) -> str:
    """The ratio, with the marks of either of its rows: a contended or host-bound baseline is in it too."""
    if pd.isna(row["speedup"]):
        return "n/a"
    marks = "".join(mark for mark, column in (("◊", "host_bound"), ("§", "contended")) if mark not in omit
                    and (is_set(row.get(column)) or is_set(row.get(f"baseline_{column}"))))
    basis = " dev" if row.get("speedup_basis") == "device time" else ""
    return f"{row['speedup']:.2f}×{basis}" + (f" {marks}" if marks else "")


def memory_text(row) -> str:
    """The steady-state figure, or the processes' range where they disagree (never the lowest of them)."""
    if pd.isna(row["memory_mb"]):
        return "–"
    if is_set(row.get("memory_disagree")):
        return f"{row['memory_min_mb']:.1f}–{row['memory_max_mb']:.1f}"
    return f"{row['memory_mb']:.1f}"


def spread_text(row) -> str:
    if pd.isna(row["processes"]):
        return "–"
    if row["processes"] < 2:
        if pd.isna(row["pooled_ci_low_ms"]):
            return "– (1)"
        coverage = row["pooled_ci_coverage"]
        interval = f"CI {ms(row['pooled_ci_low_ms'])}–{ms(row['pooled_ci_high_ms'])}"
        return interval + (f" ({coverage:.0%})" if coverage < 0.95 else "") + " (1)"
    return f"{row['spread']:.1%} ({int(row['processes'])})"


def _number(value, digits: str = ".1f") -> str:
    return "–" if pd.isna(value) else f"{value:{digits}}"


def e2e_text(row, omit=frozenset()) -> str:
    if pd.isna(row["e2e_fps"]):
        return "–"
    return f"{row['e2e_fps']:.1f}" + row_marks(row, E2E_MARKS, omit)


def latency_text(row, omit=frozenset()) -> str:
    if pd.isna(row["latency_ms"]):
        return "–"
    if host_range(row):
        return f"{ms(row['process_min_ms'])}–{ms(row['process_max_ms'])}" + row_marks(row, omit=omit)
    return ms(row["latency_ms"]) + row_marks(row, omit=omit)


def throughput_text(row) -> str:
    if host_range(row) and not pd.isna(row.get("throughput_min_fps")):
        return f"{row['throughput_min_fps']:.1f}–{row['throughput_max_fps']:.1f}"
    return _number(row["throughput_fps"])


def device_ms_text(row) -> str:
    """A CUDA model-alone row's device time per call (launches hidden); ° where its library ran on a stream of its
    own (ONNX Runtime's own CUDA graphs), which the harness cannot time so; `≤ ` before it where some sample's
    launches no spin hid (the figure is then an upper bound)."""
    if row["device"] != "cuda":
        return "–"
    if not pd.isna(row.get("gpu_ms")):
        unhidden = row.get("gpu_unhidden")
        return ("≤ " if not pd.isna(unhidden) and unhidden > 0 else "") + ms(row["gpu_ms"])
    return "– °" if isinstance(row.get("compute_stream"), str) and "own" in row["compute_stream"] else "–"


def rel_error_text(row) -> str:
    if isinstance(row.get("accuracy_error"), str):
        return "check failed"
    if pd.isna(row["rel_error_limit"]):
        return "n/a"
    if row["non_finite_images"]:
        return f"{int(row['non_finite_images'])} non-finite"
    return f"{row['max_rel_error']:.1e}" + ("" if row["within_limit"] else " (above limit)")


def _formatted(rows: pd.DataFrame, omit: frozenset) -> pd.DataFrame:
    def each(text):
        return rows.apply(text, axis=1) if len(rows) else []
    return rows.assign(
        precision_label=each(lambda r: r["precision_label"] + (" (library default)" if r["library_default"] else "")),
        latency_text=each(lambda r: latency_text(r, omit)),
        device_ms_text=each(device_ms_text),
        latency_p99_text=rows["latency_p99_ms"].map(lambda v: "–" if pd.isna(v) else ms(v)),
        spread_text=each(spread_text),
        throughput_text=each(throughput_text),
        speedup_text=each(lambda r: speedup_text(r, omit)),
        memory_text=each(memory_text),
        e2e_text=each(lambda r: e2e_text(r, omit)),
        capacity_text=rows["decode_capacity_fps"].map(_number),
        bound_text=each(loaders.bound_text),
        loader_memory_text=each(loaders.loader_memory_text),
        under_load_text=each(lambda r: "–" if pd.isna(r["model_ms_under_load"])
                             else ms(r["model_ms_under_load"]) + row_marks(r, omit=omit)),
        under_load_fps_text=rows["model_fps_under_load"].map(_number),
        rel_error=each(rel_error_text),
    )


def table(part: pd.DataFrame, kind: Scope, omit=frozenset()) -> pd.DataFrame:
    """A part's rows of one scope (fmtbench.scope) as its table shows them: its columns, less the optional ones
    none of its rows has; without the marks in `omit` (those every row of the kind carries)."""
    shown = {key: name for key, name in COLUMNS[kind].items()
             if key not in OPTIONAL_COLUMNS or OPTIONAL_COLUMNS[key](part)}
    return _formatted(part, omit)[list(shown)].rename(columns=shown)


def _tables(rows: pd.DataFrame, every: dict[Scope, frozenset]) -> list[tuple[Scope, pd.DataFrame]]:
    return [(kind, table(part, kind, every[kind])) for kind, part in zip(COLUMNS, split(rows), strict=True)
            if not part.empty]


def markdown(rows: pd.DataFrame, every: dict[str, frozenset]) -> list[str]:
    """The rows' tables (model alone, end to end) as Markdown lines; `every`: marks.on_every_row of the study."""
    return [line for _, shown in _tables(rows, every)
            for line in (shown.to_markdown(index=False, disable_numparse=True), "")]


def _html_table(rows: pd.DataFrame, title: str, every: dict[str, frozenset]) -> str:
    tables = "\n".join(shown.to_html(index=False, border=0) for _, shown in _tables(rows, every))
    warning = ""
    if rows["random_weights"].any():
        warning = (f"<p style=\"{WARNING_STYLE}\"><b>Warning — random weights</b> "
                   f"({html.escape(rows['weights'].iloc[0])}): the rel. error column measures numerical agreement "
                   "with PyTorch fp32, not ImageNet accuracy.</p>\n")
    return (f"<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>{html.escape(title)}</title>"
            f"<style>{TABLE_STYLE}</style></head>\n<body><h3>{html.escape(title)}</h3>\n{warning}{tables}\n"
            "</body></html>\n")


def write_item_tables(ok: pd.DataFrame, tables_dir: Path) -> None:
    """One HTML table per machine, image size and format: the per-configuration items of the HTML report."""
    tables_dir.mkdir(parents=True, exist_ok=True)
    every = on_every_row(ok)
    for (host, size, format_name), rows in ok.groupby(["host", "image_size", "format"], sort=True):
        path = items.table_path(tables_dir, int(size), format_name, host)
        title = f"{format_name}, {int(size)}×{int(size)}, on {host}"
        with atomic_path(path) as tmp:
            tmp.write_text(_html_table(rows, title, every), encoding="utf-8")
