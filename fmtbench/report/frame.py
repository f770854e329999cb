"""Result JSONs -> one pandas DataFrame, one row per configuration."""
from __future__ import annotations

import json

import pandas as pd

from fmtbench.atomic import read_json

KEYS = ["host", "device", "image_size", "format", "precision", "loader", "batch_size"]


def _row(result: dict) -> dict:
    timing = result.get("timing") or {}
    throughput = result.get("throughput") or {}
    memory = result.get("memory") or {}
    accuracy = result.get("accuracy") or {}
    backend = result.get("backend") or {}
    environment = result.get("environment") or {}
    return {
        **result["config"],
        "status": result["status"],
        "reason": result.get("reason"),
        "median_ms": timing.get("median"),
        "p90_ms": timing.get("p90"),
        "ci_low_ms": (timing.get("ci95_median") or [None, None])[0],
        "ci_high_ms": (timing.get("ci95_median") or [None, None])[1],
        "iterations": timing.get("count"),
        "noisy": timing.get("noisy"),
        "truncated": timing.get("truncated"),
        "clock": timing.get("clock"),
        "model_fps": throughput.get("model_fps"),
        "e2e_fps": throughput.get("end_to_end_fps"),
        "memory_mb": memory.get("allocated_mb"),
        "memory_method": memory.get("method"),
        "top1_pct": accuracy.get("top1_agreement_pct"),
        "max_abs_diff": accuracy.get("max_abs_diff"),
        "mean_abs_diff": accuracy.get("mean_abs_diff"),
        "math": backend.get("math"),
        "cpu_model": environment.get("cpu_model"),
        "gpu_name": environment.get("gpu_name"),
        "driver": environment.get("driver"),
        "cuda_runtime": environment.get("cuda_runtime"),
        "cudnn": environment.get("cudnn"),
        "torch_threads": environment.get("torch_threads"),
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
