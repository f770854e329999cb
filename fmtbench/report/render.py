"""Assembles report.md from the result JSONs: warnings, setup and method, findings, tables, plots, exports,
what did not run."""
from __future__ import annotations

import html
import json
import re
from pathlib import Path

import pandas as pd

from fmtbench import accuracy, backends, data, gpus, readings, results
from fmtbench.atomic import atomic_path, read_json
from fmtbench.model import describe, is_random
from fmtbench.report import findings, inputs, items, loaders, plots
from fmtbench.report import frame as frames
from fmtbench.stats import CONFIDENCE, median_ci

# Two tables per image size, so that every column means one thing: the model alone (dummy loader) and end to
# end (real loaders, each with the model figure of its own run). The seed study's names are in the legend.
MODEL_COLUMNS = {
    "format": "format", "device": "device", "precision_label": "precision", "batch_size": "batch",
    "latency_text": "latency p50 (ms)", "device_ms_text": "device time (ms)",
    "latency_p99_text": "p99 (ms)", "spread_text": "spread (processes)",
    "throughput_text": "throughput (img/s)",
    "speedup_text": "speedup", "memory_text": "memory (MB)", "rel_error": "rel. error",
}
E2E_COLUMNS = {
    "format": "format", "device": "device", "precision_label": "precision", "loader": "loader", "batch_size": "batch",
    "e2e_text": "end-to-end (img/s)", "capacity_text": "decode capacity (img/s)",
    "bound_text": "bound (e2e / capacity)",
    "under_load_text": "model under load (ms)", "under_load_fps_text": "model under load (img/s)",
    "spread_text": "spread (processes)", "memory_text": "memory (MB)",
    "loader_memory_text": "of which the loader (MB)",
    "rel_error": "rel. error",
}
# Columns a table has only where one of its rows has such a figure (a CPU-only study has no device time).
OPTIONAL_COLUMNS = {"device_ms_text": lambda rows: rows["device"].eq("cuda").any(),
                    "loader_memory_text": lambda rows: rows.get("loader_memory_mb", pd.Series(dtype=float))
                    .notna().any()}
WARNING_STYLE = "border:2px solid #c60;background:#fff3e0;padding:6px 10px;font:13px sans-serif"
TABLE_STYLE = ("table{border-collapse:collapse;font:13px sans-serif}th,td{padding:3px 8px;text-align:right;"
               "border-bottom:1px solid #ddd}th{background:#f3f3f3}")


def _ms(value: float) -> str:
    return f"{value:.1f}" if value >= 100 else f"{value:.3g}"


def _true(value) -> bool:
    """A flag that is set (a numpy bool, or None / NaN where a row has no such figure)."""
    return value is True or (not pd.isna(value) and bool(value)) if value is not None else False


def _marks(row) -> str:
    marks = ("~" if _true(row["noisy"]) else "") + ("‡" if _true(row["unstable"]) else "")
    marks += ("†" if row["throttled"] is True else "") + ("◊" if _true(row.get("host_bound")) else "")
    marks += "§" if _true(row.get("contended")) else ""
    return f" {marks}" if marks else ""


def _speedup_text(row) -> str:
    """The ratio, with the marks of either of its rows: a contended or host-bound baseline is in it too."""
    if pd.isna(row["speedup"]):
        return "n/a"
    marks = "◊" if _true(row.get("host_bound")) or _true(row.get("baseline_host_bound")) else ""
    marks += "§" if _true(row.get("contended")) or _true(row.get("baseline_contended")) else ""
    basis = " dev" if row.get("speedup_basis") == "device time" else ""
    return f"{row['speedup']:.2f}×{basis}" + (f" {marks}" if marks else "")


def _memory_text(row) -> str:
    """The steady-state figure, or the processes' range where they disagree (never the lowest of them)."""
    if pd.isna(row["memory_mb"]):
        return "–"
    if _true(row.get("memory_disagree")):
        return f"{row['memory_min_mb']:.1f}–{row['memory_max_mb']:.1f}"
    return f"{row['memory_mb']:.1f}"


def _precision_text(row) -> str:
    return row["precision_label"] + (" (library default)" if row["library_default"] else "")


def _spread_text(row) -> str:
    if pd.isna(row["processes"]):
        return "–"
    if row["processes"] < 2:
        if pd.isna(row["pooled_ci_low_ms"]):
            return "– (1)"
        coverage = row["pooled_ci_coverage"]
        interval = f"CI {_ms(row['pooled_ci_low_ms'])}–{_ms(row['pooled_ci_high_ms'])}"
        return interval + (f" ({coverage:.0%})" if coverage < 0.95 else "") + " (1)"
    return f"{row['spread']:.1%} ({int(row['processes'])})"


def _number(value, digits: str = ".1f") -> str:
    return "–" if pd.isna(value) else f"{value:{digits}}"


def _e2e_text(row) -> str:
    if pd.isna(row["e2e_fps"]):
        return "–"
    marks = ("*" if _true(row["stalled"]) else "") + ("^" if _true(row["e2e_above_model"]) else "")
    marks += "!" if _true(row.get("e2e_above_capacity")) else ""
    return f"{row['e2e_fps']:.1f}" + (f" {marks}" if marks else "")


def _host_range(row) -> bool:
    """A host-bound row measured in several processes: its wall figures are this host's, shown as their range."""
    return _true(row.get("host_bound")) and not pd.isna(row["processes"]) and row["processes"] >= 2


def _latency_text(row) -> str:
    if pd.isna(row["latency_ms"]):
        return "–"
    if _host_range(row):
        return f"{_ms(row['process_min_ms'])}–{_ms(row['process_max_ms'])}" + _marks(row)
    return _ms(row["latency_ms"]) + _marks(row)


def _throughput_text(row) -> str:
    if _host_range(row) and not pd.isna(row.get("throughput_min_fps")):
        return f"{row['throughput_min_fps']:.1f}–{row['throughput_max_fps']:.1f}"
    return _number(row["throughput_fps"])


def _device_ms_text(row) -> str:
    """A CUDA model-alone row's device time per call (launches hidden); ° where its library ran on a stream of its
    own (ONNX Runtime's own CUDA graphs), which the harness cannot time so."""
    if row["device"] != "cuda":
        return "–"
    if not pd.isna(row.get("gpu_ms")):
        return _ms(row["gpu_ms"])
    return "– °" if isinstance(row.get("compute_stream"), str) and "own" in row["compute_stream"] else "–"


def _rel_error_text(row) -> str:
    if isinstance(row.get("accuracy_error"), str):
        return "check failed"
    if pd.isna(row["rel_error_limit"]):
        return "n/a"
    if row["non_finite_images"]:
        return f"{int(row['non_finite_images'])} non-finite"
    return f"{row['max_rel_error']:.1e}" + ("" if row["within_limit"] else " (above limit)")


def _formatted(rows: pd.DataFrame) -> pd.DataFrame:
    return rows.assign(
        precision_label=rows.apply(_precision_text, axis=1),
        latency_text=rows.apply(_latency_text, axis=1),
        device_ms_text=rows.apply(_device_ms_text, axis=1),
        latency_p99_text=rows["latency_p99_ms"].map(lambda v: "–" if pd.isna(v) else _ms(v)),
        spread_text=rows.apply(_spread_text, axis=1),
        throughput_text=rows.apply(_throughput_text, axis=1),
        speedup_text=rows.apply(_speedup_text, axis=1),
        memory_text=rows.apply(_memory_text, axis=1),
        e2e_text=rows.apply(_e2e_text, axis=1),
        capacity_text=rows["decode_capacity_fps"].map(_number),
        bound_text=rows.apply(loaders.bound_text, axis=1),
        loader_memory_text=rows.apply(loaders.loader_memory_text, axis=1) if len(rows) else [],
        under_load_text=rows.apply(lambda r: "–" if pd.isna(r["model_ms_under_load"])
                                   else _ms(r["model_ms_under_load"]) + _marks(r), axis=1),
        under_load_fps_text=rows["model_fps_under_load"].map(_number),
        rel_error=rows.apply(_rel_error_text, axis=1),
    )


def _table(part: pd.DataFrame, columns: dict) -> pd.DataFrame:
    """A part's rows as its table shows them: its columns, less the optional ones none of its rows has."""
    shown = {key: name for key, name in columns.items()
             if key not in OPTIONAL_COLUMNS or OPTIONAL_COLUMNS[key](part)}
    return _formatted(part)[list(shown)].rename(columns=shown)


def _split(rows: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(model-alone rows, end-to-end rows), as each row's timing says it was measured."""
    real = rows["timing_kind"].eq("under_load")
    return rows[~real], rows[real]


MODEL_LEGEND = (
    "*Model alone (dummy loader).* *latency p50* = median over the row's processes of each process's median time "
    "of one call between two device-wide synchronisations (`~` a process was noisy, `‡` the processes disagree by"
    " more than {unstable} in latency or in back-to-back rate, `†` timed while the GPU reported power or thermal "
    "clock limits, `◊` host-bound: in some process the GPU was busy for less than {host_bound} of a call, so its "
    "latency and throughput are this host's launch rate, shown as the range over its processes (the low end what "
    "the format does on a quiet host) and ranked by no finding, `§` measured while other processes used its "
    "cores, the machine (CPU rows) or its GPU); *p99* = median over the processes of their 99th percentile; "
    "*spread* = (slowest − fastest) / median of the per-process medians (number of processes), or, with one "
    "process, the interval of its median (its coverage where below 95 %); *throughput* = images / s with calls "
    "queued back to back, one synchronisation per block of calls (the model alone, as a serving loop runs it; on "
    "the CPU, where a call is synchronous, batch / median call time); *speedup* = this throughput / that of "
    "{baseline} on the same device, size and batch (with the marks of either row); *memory* = the configuration's"
    " own, what it needs in a process that ran nothing before it (the median over its processes where it went "
    "first, else the median over them, which can depend on what ran before it): the model's load + the "
    "configuration's peak growth of device memory in "
    "use (CUDA) or of the process's resident set (CPU) over its own baseline during its timed phases, what the "
    "running model needs (its first call's autotuning peak is in the CSV's `memory_first_call_mb`); a range where"
    " its processes disagree by more than {memory_agree}; – where no process measured the configuration alone "
    "(each ran it after another loader at its batch size, sharing torch.compile's recorded graph, whose pool was "
    "then in the baseline; the CSV's `memory_shared_mb` holds that lower bound); *rel. error* = largest relative "
    "L2 error of an image's logits against PyTorch fp32 on the CPU, at this row's batch size; *library default* ="
    " the fp32 math the library uses out of the box. (The seed study called the format `function` and the memory "
    "`allocated_memory`.)")
E2E_LEGEND = (
    "*End to end (real loaders).* *end-to-end* = images / wall time of the timed phase after the batches the loader "
    "held ready at its start (whole rounds of the loader's workers, batches fetched and run back to back, waiting "
    "for data included; `*` below {efficiency:.0%} of min(model under load, decode capacity), `^` above the same "
    "run's model figure, `!` above the decode capacity by more than {capacity:.0%}); *decode capacity* = images / s "
    "the loader's producers made in the same processes (the host's figure: per loader, size and batch in "
    "*Decode capacity* below); *bound* = the slower stage: `loader` where that capacity is below the model's rate "
    "under load, so the host's decoding sets the end-to-end rate, not the format, else `model` (in brackets: "
    "end-to-end / capacity); "
    "*model under load* = median time of the model's call in the same run, from CUDA "
    "events on the model's stream (the loader's stream is not waited for; on the CPU perf_counter around the "
    "call), and the rate it allows; *spread* over the processes of that model time. (The seed study called the "
    "loader `dataloader_type`.)")


DEVICE_LEGEND = (
    " *device time* (CUDA rows) = median over the processes of one call's time on the GPU with its launches hidden "
    "(a spin kernel queued first holds the GPU while the host queues the call), the figure that reproduces "
    "between runs where a host-bound row's wall figures do not (`°`: none, its library ran on a CUDA stream of its "
    "own, ONNX Runtime's own CUDA graphs, which the harness cannot time so); a speedup marked `dev` is the "
    "baseline's device time / this row's, used where either row is ◊.")
LOADER_MEMORY_LEGEND = (
    " *of which the loader* = a GPU-decode row's memory minus that of the dummy-loader row of the same format, "
    "precision, size and batch (the model's own): its decoder's batches in flight, apart from the model's.")


def _legend_texts(rows: pd.DataFrame, baseline: dict, measurement: dict) -> tuple[str, str]:
    """The two legends, with the thresholds these rows were judged with (the device time's and the loader memory's
    parts only where a row has such a figure)."""
    model = MODEL_LEGEND.format(
        unstable=findings.threshold_text(rows, measurement["unstable_spread"]),
        host_bound=findings.threshold_text(rows, measurement.get("host_bound_share", 0.9), "host_bound_share"),
        baseline=f"{baseline['format']} {baseline['precision']}", memory_agree=readings.memory_agree_text())
    end_to_end = E2E_LEGEND.format(efficiency=results.PIPELINE_EFFICIENCY, capacity=results.CAPACITY_MARGIN)
    model += DEVICE_LEGEND if rows["device"].eq("cuda").any() else ""
    end_to_end += LOADER_MEMORY_LEGEND if OPTIONAL_COLUMNS["loader_memory_text"](rows) else ""
    return model, end_to_end


def _tables(rows: pd.DataFrame) -> list[str]:
    lines = []
    for part, columns in zip(_split(rows), (MODEL_COLUMNS, E2E_COLUMNS), strict=True):
        if not part.empty:
            table = _table(part, columns)
            lines += [table.to_markdown(index=False, disable_numparse=True), ""]
    return lines


def _legends(ok: pd.DataFrame, legends: tuple[str, str]) -> list[str]:
    """What the columns and marks of the tables below mean, once for all of them (each kind of table that is there)."""
    present = [legend for part, legend in zip(_split(ok), legends, strict=True) if not part.empty]
    return ["## Reading the tables", "", *[line for legend in present for line in (legend, "")]] if present else []


def _html_table(rows: pd.DataFrame, title: str) -> str:
    tables = "\n".join(_table(part, columns).to_html(index=False, border=0)
                       for part, columns in zip(_split(rows), (MODEL_COLUMNS, E2E_COLUMNS), strict=True)
                       if not part.empty)
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
    for (host, size, format_name), rows in ok.groupby(["host", "image_size", "format"], sort=True):
        path = items.table_path(tables_dir, int(size), format_name, host)
        title = f"{format_name}, {int(size)}×{int(size)}, on {host}"
        with atomic_path(path) as tmp:
            tmp.write_text(_html_table(rows, title), encoding="utf-8")


def _machines(table: pd.DataFrame) -> list[str]:
    lines = []
    for host, group in table.groupby("host", sort=True):
        first = group.iloc[0]
        gpus = sorted(set(group["gpu_name"].dropna()))
        gpu_text = ", ".join(f"{name} (driver {group['driver'].dropna().iloc[0]}, CUDA "
                             f"{group['cuda_runtime'].dropna().iloc[0]}, cuDNN {int(group['cudnn'].dropna().iloc[0])})"
                             for name in gpus) or "none used"
        libraries = json.loads(first["libraries"])
        lines.append(f"- **Machine `{host}`:** CPU {first['cpu_model']}; GPU {gpu_text}; libraries "
                     + ", ".join(f"{k} {v}" for k, v in sorted(libraries.items()) if v != "not-installed") + ".")
        cards = _cards(group)
        if cards:
            lines.append(cards)
        cpu_rows = group[(group["device"] == "cpu") & (group["status"] == "ok")]
        if not cpu_rows.empty:
            row = cpu_rows.iloc[0]
            lines.append(f"  CPU rows ran on {int(row['cpu_cores_used'])} logical CPUs "
                         f"({int(row['cpu_physical_cores'])} physical cores) with {int(row['torch_threads'])} "
                         "intra-op threads, pinned (the cores CUDA jobs and exports used were others where the "
                         "machine had a GPU).")
    return lines


def _cards(group: pd.DataFrame) -> str | None:
    """Where a machine's CUDA rows ran on several cards (of one model: one host tag): which rows ran on which."""
    rows = group[(group["device"] == "cuda") & (group["status"] == "ok")].dropna(subset=["gpu_uuid"])
    cards = sorted(set(rows["gpu_uuid"]))
    if len(cards) < 2:
        return None
    parts = []
    for index, card in enumerate(cards):
        on_card = rows[rows["gpu_uuid"] == card]
        kinds = sorted({f"{f} {p}" for f, p in zip(on_card["format"], on_card["precision"], strict=True)})
        parts.append(f"card {index + 1} (`{card}`): {', '.join(kinds)}")
    return (f"  Its CUDA rows ran on {len(cards)} cards of this model, a job per format and precision on one card "
            "(every row of a format and precision on the same card; rows of different cards compare cards too): "
            + "; ".join(parts) + ".")


def _range(values, fmt: str = ".2g", unit: str = "") -> str:
    values = pd.Series(values).dropna()
    if values.empty:
        return "–"
    low, high = values.min(), values.max()
    return f"{low:{fmt}}{unit}" if low == high else f"{low:{fmt}}–{high:{fmt}}{unit}"


def _process_text(harness: dict | None, device: str) -> str:
    """How the rows' measuring processes were laid out, as their recorded harness switches say."""
    if not harness:
        return ("A process loads the model once and measures every batch size and loader of its job (how the "
                "harness was set was not recorded: written before rows recorded it).")
    layout = ("The dummy loader's rows (the model alone) are measured in processes of their own and the real "
              "loaders' in others, so no model-alone figure is timed beside a real loader's workers; a process "
              if harness.get("loaders_apart") else "A process measures every batch size and loader of its job, the "
              "real loaders' workers alive throughout; it ")
    order = ("in an order rotated between processes" if harness.get("rotate_order")
             else "in the same order in every process")
    parts = [f"{layout}loads the model once and takes its configurations {order}."]
    memory = (("device memory is sampled every ms" if harness.get("device_memory_sampling")
               else "device memory is read at each stage") + ", and ") if device == "cuda" else ""
    parts.append("Python's garbage collector is " + ("on" if harness.get("gc_during_measurement") else
                                                     "off while a configuration is measured (as timeit does)")
                 + "; the job is " + ("pinned to its share of the cores" if harness.get("pin_cores") else
                                      "not pinned") + "; " + memory + "what else used the machine is "
                 + ("watched" if harness.get("contention_watch") else "not watched") + ".")
    return " ".join(parts)


def _settings_lines(device: str, rows: pd.DataFrame) -> list[str]:
    """What the rows of one device record about how they were measured, and what their processes did."""
    lines = []
    for _, group in rows.groupby("measurement", sort=True):
        settings = group[frames.ROW].iloc[0].measurement
        counts = group["processes"].value_counts().sort_index()
        spread = ", ".join(f"{int(n)} process{'es' if n > 1 else ''}: {count} rows" for n, count in counts.items())
        line = (f"- **{device.upper()} rows ({len(group)}):** measured in {settings.processes} "
                f"process{'es' if settings.processes > 1 else ''} each")
        if settings.max_processes > settings.processes:
            line += (f", up to {settings.max_processes} for rows whose processes disagreed by more than the "
                     "unstable share")
        line += f" ({spread}). " + _process_text(settings.harness, device) + (
            f" Per configuration: warm-up ≥ {settings.warmup_iters} calls and ≥ {settings.warmup_seconds} s")
        model = group[group["timing_kind"] == "latency"]
        if not model.empty:
            stops = ", ".join(sorted(set(",".join(model["stops"].dropna()).split(","))))
            target = (f"then until the median's 95 % interval is within ±{settings.target_ci:.0%} of it or "
                      f"{settings.max_seconds} s had passed" if settings.target_ci > 0 else
                      f"no interval target, at most {settings.max_seconds} s")
            line += (f"; dummy loader: latency samples ≥ {settings.min_iters} calls and ≥ "
                     f"{settings.min_seconds} s, {target} — in this run "
                     f"{_range(model['iterations'] / model['processes'], '.0f')} calls per process over "
                     f"{_range(model['timed_seconds_min'].tolist() + model['timed_seconds_max'].tolist(), '.3g')} s "
                     f"(stopped on: {stops}; `min_iters` is a floor even past the time cap)")
            if model["gpu_ms"].notna().any():
                line += ("; then the device time of a few calls with their launches hidden (each behind a spin "
                         "kernel), against which a call's time says whether the host sets it")
            if model["throughput_fps"].notna().any() and device == "cuda":
                energy = (f" (≥ {settings.energy_seconds} s in a row's first process)" if settings.energy_seconds
                          > settings.throughput_seconds else "")
                line += (f"; then calls back to back for ≥ {settings.throughput_seconds} s{energy}, over which the "
                         "board's energy is read in every process")
        real = group[group["timing_kind"] == "under_load"]
        if not real.empty:
            line += (f"; real loaders: the batches the loader held ready, then whole rounds of their workers back "
                     f"to back ({_range(real['iterations'] / real['processes'], '.0f')} batches per process over "
                     f"{_range(real['timed_seconds_min'].tolist() + real['timed_seconds_max'].tolist(), '.3g')} s; "
                     "the end-to-end rate over those the loader had to make)")
        lines.append(line + ".")
    return lines


def _method(ok: pd.DataFrame, baseline: dict) -> list[str]:
    """The method as the rows record it (their settings and what their processes did), not as the code is now."""
    lines = ["### How it was measured", ""]
    for device in ("cuda", "cpu"):
        rows = ok[(ok["device"] == device) & ok["measurement"].notna()]
        if not rows.empty:
            lines += _settings_lines(device, rows)
    lines += [
        "- **Shared within a measuring process** (as in a long-running server): the imported libraries and their "
        "handles and thread pools (made before the process's memory baseline, with the CUDA context on CUDA rows), "
        "the loaded model and its compiled code, autotuning results per input shape, and the real loaders' "
        "DataLoader workers (started once per process and kind of loader, before the first configuration's "
        "baseline; a task is a few images, so the same workers serve every batch size). **Not shared:** inputs, "
        "each configuration's batches and GPU-decode threads, CUDA graphs (captured anew per configuration; "
        "torch.compile keeps a batch size's graph for the next loader at that size, and its row's memory record says "
        "so), the allocator's cache and ONNX Runtime's arena (released between configurations), so each "
        "configuration's memory figure is its own.",
        "- **latency** is the format's forward call alone (CUDA: `torch.cuda.synchronize()` of the whole device "
        "before and after, so a library's own stream is included; CPU: `time.perf_counter`); **throughput** comes "
        "from calls queued back to back. A row's figure is the median of its processes' medians; its interval is "
        "the distribution-free interval of that median from the processes' medians (its coverage: "
        + ", ".join(f"{median_ci(range(n))[2]:.0%} from {n} processes" for n in (2, 3, 5))
        + f"; {CONFIDENCE:.0%} needs 6); `pooled_*` CSV columns pool every sample.",
        f"- **speedup** is against {baseline['format']} {baseline['precision']} "
        + ("(strict: TF32 off) " if baseline["precision"] == "fp32" else "")
        + "on the same machine, device, image size and batch size, from throughput (dummy loader only).",
    ]
    for name in sorted(ok["loader"].unique()):
        loader = data.loader(name)
        text = f"- **`{name}` loader:** {loader.description}."
        rows = ok[(ok["loader"] == name) & ok["distinct_images_per_batch"].notna()]
        repeated = rows[rows["distinct_images_per_batch"] < rows["batch_size"]]
        if not repeated.empty:
            text += (" Batches larger than the image set repeat its images: "
                     + ", ".join(f"batch {int(b)} held {int(d)} distinct images" for b, d in
                                 repeated[["batch_size", "distinct_images_per_batch"]].drop_duplicates()
                                 .sort_values("batch_size").itertuples(index=False)) + ".")
        timed = ok[(ok["loader"] == name) & (ok["timing_kind"] == "under_load")]
        if loader.end_to_end and not timed.empty:
            text += (" Its workers run on from one configuration to the next and one endless sampler feeds them, "
                     "so they never restart or drain; the timed phase takes the batches the loader holds ready, then "
                     "whole rounds of the workers, at least `min_iters` batches: "
                     f"{_range(timed['iterations'] / timed['processes'], '.0f')} batches per process in this run. "
                     "*Decode capacity* = images per second the producers made (timed inside them); the end-to-end "
                     "figure, taken over the batches the loader had to make during the timed phase (not those it "
                     "held ready at its start), is checked against min(model under load, capacity) and against the "
                     "capacity itself.")
        lines.append(text)
    methods = sorted(set(ok["memory_method"].dropna()))
    lines.append("- **memory:** " + "; ".join(methods) + ". The process baseline is taken after imports, the CUDA "
                 "context and the library handles (nvJPEG's too where a process decodes on the GPU); each "
                 "configuration's figure is the model's load plus its own peak growth over its own baseline (taken "
                 "after its input batch was made, before its loader started: a real loader's batches, queues and GPU "
                 "decoder are in its figure, its worker processes are not) during its timed phases: what the running "
                 "model needs, whichever configuration of the process first met its shape. The first call's peak "
                 "(autotuning, graph capture) is apart, in the CSV's `memory_first_call_mb`. " + _memory_definition(ok))
    cuda = ok[(ok["device"] == "cuda")].dropna(subset=["memory_first_call_mb", "memory_mb"])
    if not cuda.empty:
        extra = (cuda["memory_first_call_mb"] - cuda["memory_mb"]).clip(lower=0)
        lines.append(f"  Measured here: loading took a median {cuda['memory_load_mb'].median():.0f} MB; a first call "
                     f"at a new shape peaked a median {extra.median():.0f} MB (up to {extra.max():.0f} MB) above the "
                     "steady figure.")
    timed = ok.dropna(subset=["gpu_busy_share"]) if "gpu_busy_share" in ok else ok.iloc[0:0]
    if not timed.empty:
        lines.append("- **host-bound (◊):** a CUDA row's call is also timed on the device with its launches hidden "
                     "(a spin kernel queued first keeps the GPU busy while the host queues the whole call; CUDA "
                     "events around the call then time its kernels back to back). Device time / call time is how "
                     f"much of a call the GPU is busy: here {_range(timed['gpu_busy_share'], '.0%')}. Where it is "
                     "below the set share in some process, the host's launch rate sets the row's figure; that rate "
                     "moves between processes and runs, so the row's range over its processes is its figure and its "
                     "fastest process what the format does on a quiet host. ONNX Runtime runs on the measuring "
                     "process's torch stream and is timed so too; a row whose library ran on a stream of its own "
                     "(ONNX Runtime's own CUDA graphs) has no device time (° in the tables).")
    for name in sorted(ok["backend_name"].dropna().unique()):
        note = backends.spec(name).note if name in backends.names() else None
        if note:
            lines.append(f"- **{backends.spec(name).label}:** {note}")
    energy = sorted({row.gpu.energy_method for row in ok[frames.ROW] if row.gpu and row.gpu.energy_method})
    if ok["energy_j_per_image"].notna().any():
        lines.append(f"- **Energy and clocks (CUDA):** {'; '.join(energy)}; the SM clock, power and clock event "
                     f"reasons sampled every {gpus.CLOCK_SAMPLE_MS} ms by the job process during timing; a row timed "
                     "while a power or thermal limit held the clocks down is marked †. Columns in the CSV.")
    lines.append(
        "- **Accuracy:** each row's logits on a fixed batch of real images, at the row's own batch size, against "
        "PyTorch fp32 eager on the CPU (in the row's first measuring process, after its timing), as the largest "
        "relative L2 error of an image's logit vector. Its limit follows from the arithmetic: "
        f"√L·(u_in + √K·u_acc) with L = {accuracy.DEPTH} weighted layers on the longest path, K = "
        f"{accuracy.LONGEST_DOT_PRODUCT} terms in the longest dot product, u_in the unit roundoff of the "
        "convolution inputs (2⁻¹¹ for fp16 and TF32, 2⁻²⁴ for strict fp32) and u_acc = 2⁻²⁴ (fp32 accumulation), "
        f"independent rounding errors adding in quadrature: {accuracy.relative_error_limit('fp16'):.1e} for "
        f"fp16/TF32, {accuracy.relative_error_limit('fp32'):.1e} for strict fp32. Non-finite logits are outliers on "
        "their own.")
    return lines + [""]


def _memory_definition(ok: pd.DataFrame) -> str:
    """The row's memory figure in one sentence, with how many rows took which processes' figure."""
    chosen = ok.get("memory_chosen_from", pd.Series(dtype=object)).value_counts()
    how = {"first": "from the processes where they went first", "median": "the median over all their processes",
           "highest": "the highest of their processes (measured by schema 5, whose rule that was)"}
    counts = (" (here " + ", ".join(f"{int(chosen[key])} rows {how[key]}" for key in how if chosen.get(key))
              + "; CSV `memory_chosen_from`)" if len(chosen) else "")
    return ("A row's memory is its configuration's own: what it needs in a process that ran nothing before it, the "
            "median over its processes where it went first, else the median over all of them, which can depend on "
            f"what ran before it{counts}.")


def _formats(ok: pd.DataFrame) -> list[str]:
    """What each format name in the tables is (the backends' labels, recorded in every row), and which rows are
    the libraries' out-of-the-box fp32."""
    labels = ok.dropna(subset=["format_label"]).drop_duplicates("format").sort_values("format")
    if labels.empty:
        return []
    lines = ["- **Formats:** " + "; ".join(f"`{row.format}` {row.format_label}" for row in labels.itertuples()) + "."]
    defaults = sorted(ok[ok["library_default"].astype(bool)]["format"].unique())
    if defaults:
        lines.append("- **Out of the box:** " + ", ".join(f"`{name}`" for name in defaults) + " compute fp32 as "
                     "their library does by default (TF32 convolutions on Ampere and later); the other fp32 rows are "
                     "strict (TF32 off), so fp32 comparisons across formats compare strict with strict.")
    return lines


def _warnings(model_provenance: dict, ok: pd.DataFrame) -> list[str]:
    if not is_random(model_provenance):
        return []
    # The reference logits are per image size (the images resized to it): say the share at each size.
    shares = ok.dropna(subset=["reference_top1_share"]).groupby("image_size")["reference_top1_share"].max()
    parts = [f"{share * 100:.3g} %" + (" of the accuracy images share one predicted class" if not index else "")
             + f" at {int(size)}²" for index, (size, share) in enumerate(shares.items())]
    concentration = (f" With these weights {', '.join(parts)}, so top-1 agreement is not reported as a finding."
                     if parts else "")
    return ["> **Warning — random weights.** This study ran on a seeded random initialisation, not on trained "
            f"ImageNet weights: {describe(model_provenance)}. Speed and memory do not depend on the weights' values; "
            "the accuracy figures then measure numerical agreement with PyTorch, not ImageNet accuracy."
            + concentration, ""]


def _not_run(results_frame: pd.DataFrame, missing: list[str]) -> list[str]:
    """Every configuration of the study without a measurement: those with a result that says why, and those the
    study asks for that have no result at all (a run cut short)."""
    lines = ["## Not run", ""]
    unmeasured = results_frame[results_frame["status"] != "ok"]
    if unmeasured.empty and not missing:
        return lines + ["Every configuration was measured.", ""]
    if not unmeasured.empty:
        grouped = (unmeasured.groupby(["host", "format", "device", "precision", "status", "reason"], sort=True)
                   .size().reset_index(name="configurations"))
        grouped["reason"] = grouped["reason"].str.replace("|", "\\|", regex=False).str.slice(0, 300)
        lines += [f"{len(unmeasured)} configurations have no measurement:", "", grouped.to_markdown(index=False), ""]
    if missing:
        lines += [f"{len(missing)} configurations the study asks for have no result file (the run ended before "
                  "their job wrote them):", ""]
        lines += [f"- `{path}`" for path in missing[:200]]
        lines += ([f"- … and {len(missing) - 200} more"] if len(missing) > 200 else []) + [""]
    return lines


def _cross_hardware(ok: pd.DataFrame, figure) -> list[str]:
    if ok["host"].nunique() < 2:
        return []
    model = ok.dropna(subset=["throughput_fps"])
    best = model.loc[model.groupby(["host", "format"])["throughput_fps"].idxmax()]
    table = best.assign(best=best.apply(
        lambda r: f"{r['throughput_fps']:.0f} img/s ({r['precision']} {r['device']}, {int(r['image_size'])}², "
                  f"bs {int(r['batch_size'])})", axis=1)).pivot(index="format", columns="host", values="best")
    path, link = figure(items.ALL_MACHINES, "best_per_format")
    plots.best_per_format_across_hosts(best, path)
    return ["## Across machines", "",
            "Best configuration (highest model throughput, back to back) of each format per machine:", "",
            table.fillna("–").to_markdown(), "", f"![best per format per machine]({link})", ""]


def _exports(provenance_paths) -> list[str]:
    rows = []
    for path in provenance_paths:
        provenance = read_json(path)
        details = provenance.get("details") or {}
        seconds = details.get("compile_seconds") or details.get("build_seconds") or provenance.get("export_seconds")
        warm = (details.get("warm_load") or {}).get("seconds")
        rows.append({"format": provenance["format"], "precision": provenance["precision"],
                     "device": provenance["device"], "image size": provenance["image_size"] or "any",
                     "status": provenance["status"],
                     "seconds": "–" if seconds is None else f"{seconds:.1f}",
                     "cache load in a fresh process (s)": "–" if warm is None else f"{warm:.1f}",
                     "how": (details.get("method") or provenance.get("reason") or "")[:160].replace("|", "\\|")})
    if not rows:
        return []
    table = pd.DataFrame(rows).sort_values(["format", "precision", "device", "image size"], key=lambda c: c.astype(str))
    return ["## Exports", "", "One artifact per format and precision (and image size / device where the format "
            "needs it); compile and build times are paid once, here (a torch.compile row's processes load the "
            "compiled model from the cache the export warmed; that load is their first run).", "",
            table.to_markdown(index=False), ""]


def _rst(text: str) -> str:
    """A line of report.md as reStructuredText: `code` as ``code``, the other markup characters taken literally."""
    return "".join(f"``{part[1:-1]}``" if len(part) > 2 and part[0] == part[-1] == "`"
                   else re.sub(r"([\\*|_`])", r"\\\1", part) for part in re.split(r"(`[^`]+`)", text))


def _front_page(model_provenance: dict, ok: pd.DataFrame, summary: str, answer: list[str], found: list[str]) -> str:
    """The front page of Snakemake's HTML report (reStructuredText, taken as it is by its Jinja step): what ran,
    the answer and the findings, from the rows as report.md has them."""
    lines = []
    if is_random(model_provenance):
        lines += [".. raw:: html", "", f"   <p style=\"{WARNING_STYLE}\"><b>⚠ Random weights.</b> "
                  f"{html.escape(describe(model_provenance))}. Speed and memory do not depend on the weights' values; "
                  "the accuracy figures measure numerical agreement with PyTorch fp32 on the CPU, not ImageNet "
                  "accuracy.</p>", ""]
    lines += [_rst(f"fmtbench: ResNet-18 inference by deployment format. {summary}"), ""]
    if answer:
        lines += ["**In short**", "", *[f"- {_rst(line)}" for line in answer], ""]
    ran = ok.assign(kind=[f"`{row['format']}` {row['format_label'] or ''} {row['precision_label']} on {row['device']}"
                          for _, row in ok.iterrows()]) if not ok.empty else ok
    lines += ["**Measured**", ""] + [f"- {_rst(f'`{host}`: ' + '; '.join(sorted(set(rows['kind']))))}"
                                     for host, rows in ran.groupby("host", sort=True)] + [""]
    lines += ["**Findings**", "", *[f"- {_rst(line)}" for line in found], "",
              "Results are grouped by image size (category) and format (subcategory); figures that span sizes or "
              'formats are under "All image sizes" and "All formats". ``report/report.md``, written beside this '
              'report, states the method in full (section "How it was measured") and lists what did not run.', ""]
    return "{% raw %}\n" + "\n".join(lines) + "{% endraw %}\n"


def render(result_paths, model_provenance_path, report_path, baseline: dict, measurement: dict,
           export_provenance=(), tables_dir=None, results_csv=None, front_page=None) -> None:
    """report.md with its plots; with tables_dir / results_csv / front_page also the HTML report's table items and
    front page.

    `result_paths`: every result the study asks for; those without a file are listed as not run. Every file is
    checked before anything is written (inputs.RefusedInput names those that fail)."""
    present = [path for path in result_paths if Path(path).exists()]
    missing = [str(path) for path in result_paths if not Path(path).exists()]
    records = inputs.read(present)
    report_path = Path(report_path)
    plots_dir = report_path.parent / "plots"
    plots_dir.mkdir(parents=True, exist_ok=True)

    def figure(host: str, name: str) -> tuple[Path, str]:
        path = items.figure_path(plots_dir, host, name)
        path.parent.mkdir(parents=True, exist_ok=True)
        return path, path.relative_to(report_path.parent).as_posix()

    model_provenance = read_json(model_provenance_path)
    table = frames.with_loader_memory(frames.with_speedup(frames.load(present, records), baseline["format"],
                                                          baseline["precision"]))
    # Rows written before results carried their weights (another machine's, copied here) say so: this
    # machine's model need not be theirs.
    table["weights"] = table["weights"].fillna("not recorded (written before results carried it)")
    table["random_weights"] = table["random_weights"].fillna(False).astype(bool)
    ok = table[table["status"] == "ok"]
    unstable = measurement["unstable_spread"]  # for rows that did not record the threshold they were judged with
    asked = len(table) + len(missing)
    summary = (f"{len(ok)} of the {asked} configurations the study asks for were measured on "
               f"{table['host'].nunique()} machine(s); {len(table) - len(ok)} could not be ("
               + ", ".join(f"{count} {status}" for status, count in
                           table[table["status"] != "ok"]["status"].value_counts().sort_index().items())
               + f"), {len(missing)} were not run (see Not run).")
    answer = findings.answer(ok, baseline["format"], baseline["precision"]) if not ok.empty else []
    found = findings.all_findings(table, baseline["format"], unstable, is_random(model_provenance))
    lines = ["# fmtbench: ResNet-18 inference by deployment format", ""]
    lines += _warnings(model_provenance, ok)
    lines += [summary, ""] + (["**In short:**", "", *[f"- {line}" for line in answer], ""] if answer else [])
    lines += ["## Setup", "", f"- **Weights:** {describe(model_provenance)}.", *_formats(ok), *_machines(table), ""]
    lines += _method(ok, baseline) if not ok.empty else []
    lines += ["## Findings", "", *[f"- {line}" for line in found], ""]
    lines += _cross_hardware(ok, figure)
    lines += _legends(ok, _legend_texts(ok, baseline, measurement))
    for host, host_ok in ok.groupby("host", sort=True):
        lines += [f"## Results on `{host}`", ""]
        for size, rows in host_ok.groupby("image_size", sort=True):
            lines += [f"### {size}×{size}", "", *_tables(rows)]
            for name, draw in plots.PER_SIZE.items():
                path, link = figure(host, f"{name}_{size}")
                if draw(rows, size, path):
                    lines += [f"![{items.FIGURE_TITLES[name]}, {size}×{size}]({link})", ""]
        lines += loaders.capacity_table(host_ok)
        lines += ["### Across image sizes", ""]
        for name, draw in plots.PER_HOST.items():
            path, link = figure(host, name)
            if draw(host_ok, path):
                lines += [f"![{items.FIGURE_TITLES[name]}]({link})", ""]
    lines += _exports(export_provenance)
    lines += _not_run(table, missing)
    with atomic_path(report_path) as tmp:
        tmp.write_text("\n".join(lines), encoding="utf-8")
    if front_page is not None:
        with atomic_path(Path(front_page)) as tmp:
            tmp.write_text(_front_page(model_provenance, ok, summary, answer, found), encoding="utf-8")
    if tables_dir is not None:
        write_item_tables(ok, Path(tables_dir))
    if results_csv is not None:
        with atomic_path(Path(results_csv)) as tmp:
            frames.csv_columns(table).to_csv(tmp, index=False)
