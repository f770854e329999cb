"""Result JSONs -> one pandas DataFrame, one row per configuration (the report's and the CSV's columns)."""
from __future__ import annotations

import json

import pandas as pd

from fmtbench.atomic import read_json

KEYS = ["host", "device", "image_size", "format", "precision", "loader", "batch_size"]


def _get(mapping, *path):
    for key in path:
        if not isinstance(mapping, dict):
            return None
        mapping = mapping.get(key)
    return mapping


def _row(result: dict) -> dict:
    timing = result.get("timing") or {}
    throughput = result.get("throughput") or {}
    memory = result.get("memory") or {}
    accuracy = result.get("accuracy") or {}
    gpu = result.get("gpu") or {}
    backend = result.get("backend") or {}
    environment = result.get("environment") or {}
    processes = timing.get("processes") or []
    medians = [p["summary"]["median"] for p in processes]
    return {
        **result["config"],
        "status": result["status"],
        "reason": result.get("reason"),
        "weights": _get(result, "weights", "description"),
        "random_weights": _get(result, "weights", "random"),
        "median_ms": timing.get("median"),
        "processes": len(processes) or None,
        "process_min_ms": min(medians) if medians else None,
        "process_max_ms": max(medians) if medians else None,
        "spread": timing.get("spread"),
        "unstable": timing.get("unstable"),
        "noisy": timing.get("noisy"),
        "iterations": sum(p["summary"]["count"] for p in processes) or None,
        "p90_ms": _get(timing, "pooled", "p90"),
        "ci_low_ms": _get(timing, "pooled", "ci_low"),
        "ci_high_ms": _get(timing, "pooled", "ci_high"),
        "ci_coverage": _get(timing, "pooled", "ci_coverage"),
        "stops": ",".join(sorted({p["stop"] for p in processes})) or None,
        "clock": timing.get("clock"),
        "model_fps": throughput.get("model_fps"),
        "e2e_fps": throughput.get("end_to_end_fps"),
        "decode_capacity_fps": throughput.get("decode_capacity_fps"),
        "pipeline_efficiency": throughput.get("pipeline_efficiency"),
        "stalled": throughput.get("stalled"),
        "e2e_above_model": throughput.get("above_model_fps"),
        "data_wait_median_ms": _get(throughput, "data_wait_ms", "median"),
        "data_wait_p90_ms": _get(throughput, "data_wait_ms", "p90"),
        "memory_mb": memory.get("allocated_mb"),
        "memory_load_mb": memory.get("load_mb"),
        "memory_first_run_mb": memory.get("first_run_mb"),
        "torch_reserved_mb": memory.get("torch_max_reserved_mb"),
        "memory_method": memory.get("method"),
        "energy_j_per_image": gpu.get("energy_j_per_image"),
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
        "math": backend.get("math"),
        "format_label": backend.get("label"),
        "cpu_model": environment.get("cpu_model"),
        "gpu_name": environment.get("gpu_name"),
        "driver": environment.get("driver"),
        "cuda_runtime": environment.get("cuda_runtime"),
        "cudnn": environment.get("cudnn"),
        "torch_threads": environment.get("torch_threads"),
        "cpu_cores_used": len(environment.get("cpu_affinity") or []) or None,
        "cpu_physical_cores": environment.get("cpu_physical_cores"),
        "libraries": json.dumps(environment.get("libraries", {}), sort_keys=True),
    }


def load(paths) -> pd.DataFrame:
    rows = [_row(read_json(path)) for path in paths]
    frame = pd.DataFrame(rows)
    if frame.empty:
        return frame
    return frame.sort_values(KEYS, kind="stable").reset_index(drop=True)


def with_speedup(frame: pd.DataFrame, baseline_format: str, baseline_precision: str) -> pd.DataFrame:
    """speedup = baseline median / row median, same host, device, image size, batch size and loader."""
    same = ["host", "device", "image_size", "batch_size", "loader"]
    baseline = frame[(frame["format"] == baseline_format) & (frame["precision"] == baseline_precision)
                     & (frame["status"] == "ok")][same + ["median_ms"]].rename(columns={"median_ms": "baseline_ms"})
    merged = frame.merge(baseline, on=same, how="left")
    merged["speedup"] = merged["baseline_ms"] / merged["median_ms"]
    return merged
