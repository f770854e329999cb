"""Result JSONs -> one pandas DataFrame, one row per configuration (the report's and the CSV's columns).

Each column means one thing for every row that has it, and is empty where a row has no such figure:
- dummy-loader rows: `latency_*` (each call between two synchronisations; the row's median is the median of
  its processes' medians, and its interval is the order-statistics interval of those medians) and
  `throughput_fps` (calls back to back: the model alone) with `speedup` from it;
- real-loader rows: `e2e_fps` (images / wall time, waiting for data included), the decode capacity measured in
  the same processes (`decode_capacity_fps`, the host's figure), `e2e_bound` (the slower stage,
  results.pipeline_bound: loader where that capacity is below the model's rate under load, else model) with
  `e2e_over_capacity` (e2e / capacity: a loader-bound row's figure), and the same run's own model
  figures `model_ms_under_load` / `model_fps_under_load` (CUDA events on the model's stream beside the loader);
- `pooled_*`: every sample of every process taken together (not the row's interval when processes disagree);
- `memory_mb`: the configuration's own steady-state figure (the model's load + its peak growth over its timed
  phases: what the running model needs in a process that ran nothing before it — the median over the processes
  where it went first, else over all of them, `memory_chosen_from`; `memory_min_mb`–`memory_max_mb` their range,
  `memory_disagree` where they differ by more than row_parts.MEMORY_AGREE); `memory_first_call_mb` the peak
  through its first call and warm-up (autotuning, graph capture), `memory_peak_mb` the overall peak (before
  schema 4 the only figure: rows of older results have no `memory_mb`); `memory_shared_mb` instead where no
  process measured it alone;
- `gpu_ms`: CUDA model-alone rows: the median over the processes of a call's device time with its launches
  hidden (torch's formats and ONNX Runtime on the process's torch stream; none where a library runs on a stream of
  its own, `compute_stream` says so); `speedup_basis` says whether a speedup is from it (either row host-bound) or
  from back-to-back throughput; `gpu_retaken` / `gpu_unhidden`: the device-time samples its processes took again
  behind a longer spin, and those no spin hid (kept: the row's device time is then an upper bound, shown `≤`);
  `loader_memory_mb`: a GPU-decode row's memory minus its dummy row's (the loader's);
- `host_bound`: in some process the GPU was busy for less than the set share of a synchronised call
  (`gpu_busy_share`, from `gpu_ms`, the call's device time with its launches hidden) or of the back-to-back phase
  (`rate_busy_share`: device time × calls / the phase's wall time; schema 8 on): the figures are the host's.
"""
from __future__ import annotations

import json
import statistics
from dataclasses import asdict

import pandas as pd

from fmtbench import backends, results, stats
from fmtbench.atomic import read_json
from fmtbench.report.labels import precision_label
from fmtbench.scope import Scope
from fmtbench.typedjson import to_json

KEYS = ["host", "device", "image_size", "format", "precision", "loader", "batch_size"]
# The typed row behind each line of the frame (results.Row): not a CSV column.
ROW = "row"


def _get(value, *path):
    """An attribute (of a typed record) or key (of a dict) path; None where any step is missing."""
    for key in path:
        if value is None:
            return None
        value = value.get(key) if isinstance(value, dict) else getattr(value, key, None)
    return value


def _ratio(value, base):
    return value / base if value and base else None


def library_default(backend: dict, precision: str) -> bool:
    """An fp32 row whose options are the library's own out-of-the-box behaviour (FormatSpec.library_defaults)."""
    name, options = backend.get("backend"), backend.get("options")
    if precision != "fp32" or not name or options is None or name not in backends.names():
        return False
    defaults = backends.spec(name).library_defaults
    return bool(defaults) and all(options.get(key) == value for key, value in defaults.items())


def _timing_columns(timing: stats.Timing | None) -> dict:
    processes = timing.processes if timing else []
    medians = [p.summary.median for p in processes]
    under_load = _get(timing, "kind") == Scope.END_TO_END
    latency = timing is not None and not under_load
    row = {
        "timing_kind": _get(timing, "kind"),
        "processes": len(processes) or None,
        "process_min_ms": min(medians) if medians else None,
        "process_max_ms": max(medians) if medians else None,
        "spread": _get(timing, "spread"),
        "unstable": _get(timing, "unstable"),
        "noisy": _get(timing, "noisy"),
        "iterations": sum(p.summary.count for p in processes) or None,
        "stops": ",".join(sorted({p.stop for p in processes})) or None,
        "clock": _get(timing, "clock"),
        "timed_seconds_min": min((p.timed_seconds for p in processes), default=None),
        "timed_seconds_max": max((p.timed_seconds for p in processes), default=None),
    }
    for name, key in (("latency_ms", "median"), ("latency_p90_ms", "p90"), ("latency_p99_ms", "p99"),
                      ("latency_ci_low_ms", "ci_low"), ("latency_ci_high_ms", "ci_high"),
                      ("latency_ci_coverage", "ci_coverage")):
        row[name] = _get(timing, key) if latency else None
    row["model_ms_under_load"] = _get(timing, "median") if under_load else None
    row["throughput_fps"] = _get(timing, "throughput_fps")
    row["throughput_spread"] = _get(timing, "throughput_spread")
    rates = [p.throughput.images_per_s for p in processes if p.throughput is not None]
    row["throughput_min_fps"] = min(rates) if rates else None
    row["throughput_max_fps"] = max(rates) if rates else None
    row["gpu_busy_share"] = _get(timing, "gpu_busy_share")
    row["rate_busy_share"] = _get(timing, "rate_busy_share")
    row["host_bound"] = _get(timing, "host_bound")
    gpu_ms = [p.gpu_ms for p in processes if p.gpu_ms is not None]
    row["gpu_ms"] = statistics.median(gpu_ms) if gpu_ms else None
    for name in ("gpu_retaken", "gpu_unhidden"):  # the spin check's counts over the processes (absent before it)
        counts = [getattr(p, name) for p in processes if getattr(p, name) is not None]
        row[name] = sum(counts) if counts else None
    for name in ("median", "p90", "ci_low", "ci_high", "ci_coverage"):
        row[f"pooled_{name}" + ("_ms" if name != "ci_coverage" else "")] = _get(timing, "pooled", name)
    return row


def _row(result: results.Row) -> dict:
    throughput, memory, accuracy, gpu = result.throughput, result.memory, result.accuracy, result.gpu
    backend, environment, config = result.backend or {}, result.environment or {}, result.config
    under_load = _get(throughput, "basis") == Scope.END_TO_END
    shared = _get(memory, "shared")
    steady = [value for value in _get(memory, "steady_mb_processes") or [] if value is not None]
    return {
        **dict(sorted(asdict(config).items())),  # the JSON's key order, as the CSV has always had it
        "status": result.status,
        "reason": result.reason,
        "weights": _get(result, "weights", "description"),
        "random_weights": _get(result, "weights", "random"),
        "format_label": backend.get("label"),
        "backend_name": backend.get("backend"),
        "math": backend.get("math"),
        "compute_stream": backend.get("compute_stream"),
        "precision_label": precision_label({"math": backend.get("math"), "device": config.device,
                                            "precision": config.precision}),
        "library_default": library_default(backend, config.precision),
        **_timing_columns(result.timing),
        "model_fps_under_load": _get(throughput, "model_fps") if under_load else None,
        "e2e_fps": _get(throughput, "end_to_end_fps"),
        "e2e_spread": _get(throughput, "end_to_end_spread"),
        "decode_capacity_fps": _get(throughput, "decode_capacity_fps"),
        "capacity_spread": _get(throughput, "capacity_spread"),
        "pipeline_efficiency": _get(throughput, "pipeline_efficiency"),
        "e2e_bound": results.pipeline_bound(_get(throughput, "model_fps") if under_load else None,
                                            _get(throughput, "decode_capacity_fps")),
        "e2e_over_capacity": _ratio(_get(throughput, "end_to_end_fps"), _get(throughput, "decode_capacity_fps")),
        "stalled": _get(throughput, "stalled"),
        "e2e_above_model": _get(throughput, "above_model_fps"),
        "e2e_above_capacity": _get(throughput, "above_capacity"),
        "data_wait_median_ms": _get(throughput, "data_wait_ms", "median"),
        "data_wait_p90_ms": _get(throughput, "data_wait_ms", "p90"),
        "distinct_images_per_batch": _get(throughput, "distinct_images_per_batch"),
        # A figure no process measured alone (each ran the configuration after another loader at its batch size,
        # sharing torch.compile's recorded graph: its pool was in the baseline) is a lower bound, not the
        # configuration's memory: kept apart, out of tables, findings and plots.
        "memory_mb": None if shared else _get(memory, "steady_mb"),
        "memory_shared_mb": _get(memory, "steady_mb") if shared else None,
        "memory_min_mb": min(steady) if steady and not shared else None,
        "memory_max_mb": max(steady) if steady and not shared else None,
        "memory_disagree": _get(memory, "steady_disagree"),
        "memory_chosen_from": _get(memory, "chosen_from"),
        "memory_first_call_mb": _get(memory, "first_call_peak_mb"),
        "memory_peak_mb": _get(memory, "allocated_mb"),
        "memory_load_mb": _get(memory, "load_mb"),
        "memory_first_run_mb": _get(memory, "first_run_mb"),
        "torch_reserved_mb": _get(memory, "torch_max_reserved_mb"),
        "memory_method": _get(memory, "method"),
        "memory_shared": shared,
        "energy_j_per_image": _get(gpu, "energy_j_per_image"),
        "energy_phase_seconds": _get(gpu, "energy_phase_seconds"),
        "throttled": _get(gpu, "throttled"),
        "sm_clock_min_mhz": _get(gpu, "sm_clock_mhz", "min"),
        "sm_clock_max_mhz": _get(gpu, "sm_clock_mhz", "max"),
        "clock_event_reasons": ",".join(_get(gpu, "clock_event_reasons") or []) or None,
        "contended": _get(result, "contention", "contended"),
        "others_cpu_share_max": _get(result, "contention", "others_share_max"),
        "others_elsewhere_share_max": _get(result, "contention", "elsewhere_share_max"),
        "max_rel_error": _get(accuracy, "max_rel_error"),
        "rel_error_limit": _get(accuracy, "rel_error_limit"),
        "within_limit": _get(accuracy, "within_limit"),
        "non_finite_images": _get(accuracy, "non_finite_images"),
        "top1_pct": _get(accuracy, "top1_agreement_pct"),
        "reference_top1_share": _get(accuracy, "reference_top1_share"),
        "max_abs_diff": _get(accuracy, "max_abs_diff"),
        "accuracy_batch_size": _get(accuracy, "batch_size"),
        "accuracy_error": backend.get("accuracy_error"),
        "cpu_model": environment.get("cpu_model"),
        "gpu_name": environment.get("gpu_name"),
        "gpu_uuid": environment.get("gpu_uuid"),
        "driver": environment.get("driver"),
        "cuda_runtime": environment.get("cuda_runtime"),
        "cudnn": environment.get("cudnn"),
        "torch_threads": environment.get("torch_threads"),
        "cpu_cores_used": len(environment.get("cpu_affinity") or []) or None,
        "cpu_physical_cores": environment.get("cpu_physical_cores"),
        "libraries": json.dumps(environment.get("libraries", {}), sort_keys=True),
        "measurement": (json.dumps(to_json(result.measurement), sort_keys=True) if result.measurement else None),
        ROW: result,
    }


def load(paths, records: dict | None = None) -> pd.DataFrame:
    """One line per result file, its typed row in the `row` column (left out of the CSV: `csv_columns`);
    `records`: the files already read and checked (report.result_files.read), by path."""
    rows = [_row(results.Row.from_json(records[str(path)] if records is not None else read_json(path)))
            for path in paths]
    frame = pd.DataFrame(rows)
    if frame.empty:
        return frame
    return frame.sort_values(KEYS, kind="stable").reset_index(drop=True)


def study(paths, records: dict, baseline: dict) -> pd.DataFrame:
    """The report's frame of a study's result files (`load`), with the speedups over `baseline` (its format and
    precision) and the GPU-decode rows' loader memory; rows written before results carried their weights (another
    machine's, copied here) say so: this machine's model need not be theirs."""
    table = with_loader_memory(with_speedup(load(paths, records), baseline["format"], baseline["precision"]))
    table["weights"] = table["weights"].fillna("not recorded (written before results carried it)")
    table["random_weights"] = table["random_weights"].fillna(False).astype(bool)
    return table


def csv_columns(frame: pd.DataFrame) -> pd.DataFrame:
    """The frame as the results CSV has it: every column but the typed rows."""
    return frame.drop(columns=[ROW], errors="ignore")


def settings(rows: pd.DataFrame) -> list:
    """The distinct settings (settings.Settings) these rows were measured with, in the order of their JSON text."""
    chosen = rows.dropna(subset=["measurement"]).drop_duplicates("measurement").sort_values("measurement")
    return [row.measurement for row in chosen[ROW]]


def with_speedup(frame: pd.DataFrame, baseline_format: str, baseline_precision: str) -> pd.DataFrame:
    """speedup = row's back-to-back throughput / the baseline's, same host, device, image size and batch size
    (dummy-loader rows: the model alone; real-loader rows have none, their figure is end to end). Where either row
    is host-bound (◊) and both have a device time, the speedup is the baseline's device time / the row's (a
    host-bound row's wall rate is the host's launch rate; its device time reproduces): `speedup_basis` says which
    figure. A speedup carries the marks of both its rows: the baseline's contention and host-boundness are in it too."""
    frame = frame.drop(columns=["speedup", "speedup_basis", "baseline_fps", "baseline_contended",
                                "baseline_host_bound", "baseline_gpu_ms"], errors="ignore")  # made anew
    same = ["host", "device", "image_size", "batch_size", "loader"]
    figures = ["throughput_fps", "contended", "host_bound", "gpu_ms"]
    baseline = frame[(frame["format"] == baseline_format) & (frame["precision"] == baseline_precision)
                     & (frame["status"] == "ok")][same + figures].rename(
        columns={"throughput_fps": "baseline_fps", "contended": "baseline_contended",
                 "host_bound": "baseline_host_bound", "gpu_ms": "baseline_gpu_ms"})
    merged = frame.merge(baseline, on=same, how="left")
    merged["speedup"] = merged["throughput_fps"] / merged["baseline_fps"]
    host_bound = merged["host_bound"].eq(True) | merged["baseline_host_bound"].eq(True)
    device = host_bound & merged["gpu_ms"].notna() & merged["baseline_gpu_ms"].notna()
    by_device = pd.to_numeric(merged["baseline_gpu_ms"]) / pd.to_numeric(merged["gpu_ms"])
    merged["speedup"] = merged["speedup"].where(~device, by_device)
    merged["speedup_basis"] = None
    merged.loc[merged["speedup"].notna(), "speedup_basis"] = "throughput"
    merged.loc[device, "speedup_basis"] = "device time"
    return merged


# Loaders that decode on the GPU: their row's memory holds the decoder's batches in flight beside the model's.
GPU_DECODE_LOADERS = ("real_gpu_decode",)


def with_loader_memory(frame: pd.DataFrame) -> pd.DataFrame:
    """`loader_memory_mb` for GPU-decode rows: the row's memory minus that of the dummy-loader row of the same host,
    device, format, precision, image size and batch size (the model's own): the loader's share, apart from the
    model's; empty for other rows and where either figure is missing."""
    same = ["host", "device", "format", "precision", "image_size", "batch_size"]
    dummy = frame[(frame["loader"] == "dummy") & (frame["status"] == "ok")][same + ["memory_mb"]].rename(
        columns={"memory_mb": "model_memory_mb"}).drop_duplicates(same)
    merged = frame.merge(dummy, on=same, how="left")
    decode = merged["loader"].isin(GPU_DECODE_LOADERS)
    merged["loader_memory_mb"] = (merged["memory_mb"] - merged["model_memory_mb"]).where(decode)
    return merged.drop(columns=["model_memory_mb"])
