"""Result JSONs -> one pandas DataFrame, one row per configuration (the report's and the CSV's columns).

Each column means one thing for every row that has it, and is empty where a row has no such figure:
- dummy-loader rows: `latency_*` (each call between two synchronisations; the row's median is the median of
  its processes' medians, and its interval is the order-statistics interval of those medians) and
  `throughput_fps` (calls back to back: the model alone) with `speedup` from it;
- real-loader rows: `e2e_fps` (images / wall time, waiting for data included) and the same run's own model
  figures `model_ms_under_load` / `model_fps_under_load` (CUDA events on the model's stream beside the loader);
- `pooled_*`: every sample of every process taken together (not the row's interval when processes disagree);
- `memory_mb`: the configuration's own figure; `memory_shared_mb` instead where no process measured it alone.
"""
from __future__ import annotations

import json

import pandas as pd

from fmtbench import backends
from fmtbench.atomic import read_json
from fmtbench.backends.base import math_label

KEYS = ["host", "device", "image_size", "format", "precision", "loader", "batch_size"]


def _get(mapping, *path):
    for key in path:
        if not isinstance(mapping, dict):
            return None
        mapping = mapping.get(key)
    return mapping


def library_default(backend: dict, precision: str) -> bool:
    """An fp32 row whose options are the library's own out-of-the-box behaviour (FormatSpec.library_defaults)."""
    name, options = backend.get("backend"), backend.get("options")
    if precision != "fp32" or not name or options is None or name not in backends.names():
        return False
    defaults = backends.spec(name).library_defaults
    return bool(defaults) and all(options.get(key) == value for key, value in defaults.items())


def _timing_columns(timing: dict) -> dict:
    processes = timing.get("processes") or []
    medians = [p["summary"]["median"] for p in processes]
    under_load = timing.get("kind") == "under_load"
    latency = timing and not under_load
    row = {
        "timing_kind": timing.get("kind"),
        "processes": len(processes) or None,
        "process_min_ms": min(medians) if medians else None,
        "process_max_ms": max(medians) if medians else None,
        "spread": timing.get("spread"),
        "unstable": timing.get("unstable"),
        "noisy": timing.get("noisy"),
        "iterations": sum(p["summary"]["count"] for p in processes) or None,
        "stops": ",".join(sorted({p["stop"] for p in processes})) or None,
        "clock": timing.get("clock"),
        "timed_seconds_min": min((p["timed_seconds"] for p in processes), default=None),
        "timed_seconds_max": max((p["timed_seconds"] for p in processes), default=None),
    }
    for name, key in (("latency_ms", "median"), ("latency_p90_ms", "p90"), ("latency_p99_ms", "p99"),
                      ("latency_ci_low_ms", "ci_low"), ("latency_ci_high_ms", "ci_high"),
                      ("latency_ci_coverage", "ci_coverage")):
        row[name] = timing.get(key) if latency else None
    row["model_ms_under_load"] = timing.get("median") if under_load else None
    row["throughput_fps"] = timing.get("throughput_fps")
    row["throughput_spread"] = timing.get("throughput_spread")
    for name in ("median", "p90", "ci_low", "ci_high", "ci_coverage"):
        row[f"pooled_{name}" + ("_ms" if name != "ci_coverage" else "")] = _get(timing, "pooled", name)
    return row


def _row(result: dict) -> dict:
    timing = result.get("timing") or {}
    throughput = result.get("throughput") or {}
    memory = result.get("memory") or {}
    accuracy = result.get("accuracy") or {}
    gpu = result.get("gpu") or {}
    backend = result.get("backend") or {}
    environment = result.get("environment") or {}
    config = result["config"]
    under_load = throughput.get("basis") == "under_load"
    return {
        **config,
        "status": result["status"],
        "reason": result.get("reason"),
        "weights": _get(result, "weights", "description"),
        "random_weights": _get(result, "weights", "random"),
        "format_label": backend.get("label"),
        "backend_name": backend.get("backend"),
        "math": backend.get("math"),
        "precision_label": math_label(backend.get("math"), config["device"], config["precision"]),
        "library_default": library_default(backend, config["precision"]),
        **_timing_columns(timing),
        "model_fps_under_load": throughput.get("model_fps") if under_load else None,
        "e2e_fps": throughput.get("end_to_end_fps"),
        "e2e_spread": throughput.get("end_to_end_spread"),
        "decode_capacity_fps": throughput.get("decode_capacity_fps"),
        "capacity_spread": throughput.get("capacity_spread"),
        "pipeline_efficiency": throughput.get("pipeline_efficiency"),
        "stalled": throughput.get("stalled"),
        "e2e_above_model": throughput.get("above_model_fps"),
        "data_wait_median_ms": _get(throughput, "data_wait_ms", "median"),
        "data_wait_p90_ms": _get(throughput, "data_wait_ms", "p90"),
        "distinct_images_per_batch": throughput.get("distinct_images_per_batch"),
        # A figure no process measured alone (each ran the configuration after another loader at its batch size,
        # sharing torch.compile's recorded graph: its pool was in the baseline) is a lower bound, not the
        # configuration's memory: kept apart, out of tables, findings and plots.
        "memory_mb": None if memory.get("shared") else memory.get("allocated_mb"),
        "memory_shared_mb": memory.get("allocated_mb") if memory.get("shared") else None,
        "memory_load_mb": memory.get("load_mb"),
        "memory_first_run_mb": memory.get("first_run_mb"),
        "torch_reserved_mb": memory.get("torch_max_reserved_mb"),
        "memory_method": memory.get("method"),
        "memory_shared": memory.get("shared"),
        "energy_j_per_image": gpu.get("energy_j_per_image"),
        "energy_phase_seconds": gpu.get("energy_phase_seconds"),
        "throttled": gpu.get("throttled"),
        "sm_clock_min_mhz": _get(gpu, "sm_clock_mhz", "min"),
        "sm_clock_max_mhz": _get(gpu, "sm_clock_mhz", "max"),
        "clock_event_reasons": ",".join(gpu.get("clock_event_reasons") or []) or None,
        "contended": _get(result, "contention", "contended"),
        "others_cpu_share_max": _get(result, "contention", "others_share_max"),
        "max_rel_error": accuracy.get("max_rel_error"),
        "rel_error_limit": accuracy.get("rel_error_limit"),
        "within_limit": accuracy.get("within_limit"),
        "non_finite_images": accuracy.get("non_finite_images"),
        "top1_pct": accuracy.get("top1_agreement_pct"),
        "reference_top1_share": accuracy.get("reference_top1_share"),
        "max_abs_diff": accuracy.get("max_abs_diff"),
        "accuracy_batch_size": accuracy.get("batch_size"),
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
        "measurement": json.dumps(result.get("measurement"), sort_keys=True) if result.get("measurement") else None,
    }


def load(paths) -> pd.DataFrame:
    rows = [_row(read_json(path)) for path in paths]
    frame = pd.DataFrame(rows)
    if frame.empty:
        return frame
    return frame.sort_values(KEYS, kind="stable").reset_index(drop=True)


def with_speedup(frame: pd.DataFrame, baseline_format: str, baseline_precision: str) -> pd.DataFrame:
    """speedup = row's back-to-back throughput / the baseline's, same host, device, image size and batch size
    (dummy-loader rows: the model alone; real-loader rows have none, their figure is end to end)."""
    same = ["host", "device", "image_size", "batch_size", "loader"]
    baseline = frame[(frame["format"] == baseline_format) & (frame["precision"] == baseline_precision)
                     & (frame["status"] == "ok")][same + ["throughput_fps"]].rename(
        columns={"throughput_fps": "baseline_fps"})
    merged = frame.merge(baseline, on=same, how="left")
    merged["speedup"] = merged["throughput_fps"] / merged["baseline_fps"]
    return merged
