"""The result JSON of one configuration (schema: schemas/result.schema.json, its `timing` part derived from
stats.Timing), and how a row's figures are drawn from its measuring processes."""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from functools import cache
from pathlib import Path

import numpy as np

from fmtbench import data, stats

SCHEMA_PATH = Path(__file__).resolve().parent.parent / "schemas" / "result.schema.json"
SCHEMA_VERSION = 2
STATUSES = ("ok", "unavailable", "oom", "failed")
# e2e FPS below this share of min(model FPS, decode capacity) means the pipeline stalled.
PIPELINE_EFFICIENCY = 0.9


@dataclass(frozen=True)
class Config:
    format: str
    precision: str
    device: str
    loader: str
    image_size: int
    batch_size: int
    host: str


def record(config: Config, status: str, reason: str | None = None, *, timing=None, throughput=None,
           memory=None, gpu=None, accuracy=None, environment=None, artifact=None, backend=None,
           processes=None, transient: bool = False, attempt: int = 1) -> dict:
    if status not in STATUSES:
        raise ValueError(f"status {status!r} is not one of {STATUSES}")
    return {
        "schema_version": SCHEMA_VERSION,
        "config": asdict(config),
        "status": status,
        "reason": reason,
        # a failure that may not repeat (process killed, timed out, out of memory): the next runs remeasure it
        "transient": transient,
        "attempt": attempt,
        "timing": timing,
        "throughput": throughput,
        "memory": memory,
        "gpu": gpu,
        "accuracy": accuracy,
        "environment": environment or {},
        "artifact": artifact,
        "backend": backend or {},
        "processes": processes or [],
    }


def _median(values):
    values = [v for v in values if v is not None]
    return float(np.median(values)) if values else None


def throughput(batch_size: int, median_ms: float, processes: list[dict]) -> dict:
    """Model FPS from the row's median time; for loaders with an end-to-end figure, the median over the
    processes of images / wall time of the timed phase, the decode capacity and how close e2e came to what
    the pipeline allows: min(model FPS, capacity) where the producer runs beside the model (workers, a
    decode thread), 1 / (1/model + 1/capacity) where the measuring process decodes itself (no workers)."""
    model_fps = batch_size / (median_ms / 1e3)
    loaders = [p["loader"] for p in processes if p.get("loader")]
    if not loaders:
        return {"model_fps": model_fps, "end_to_end_fps": None}
    e2e = [entry["end_to_end_fps"] for entry in loaders]
    capacity = _median(entry["decode_capacity_fps"] for entry in loaders)
    end_to_end = _median(e2e)
    if not capacity:
        expected = model_fps
    elif loaders[0]["concurrent"]:
        expected = min(model_fps, capacity)
    else:
        expected = 1 / (1 / model_fps + 1 / capacity)
    waits = [entry["data_wait_ms"] for entry in loaders if entry["data_wait_ms"]]
    return {
        "model_fps": model_fps,
        "end_to_end_fps": end_to_end,
        "end_to_end_spread": (max(e2e) - min(e2e)) / end_to_end if len(e2e) > 1 and end_to_end else 0.0,
        "decode_capacity_fps": capacity,
        "expected_fps": expected,
        "pipeline_efficiency": end_to_end / expected if expected else None,
        "stalled": bool(expected and end_to_end < PIPELINE_EFFICIENCY * expected),
        "above_model_fps": bool(end_to_end > model_fps),
        "data_wait_ms": {key: _median(w[key] for w in waits) for key in ("median", "mean", "p90", "max")}
        if waits else None,
        "producer": loaders[0]["producer"],
    }


def memory_summary(records: list[dict]) -> dict:
    """The record of the process with the median growth, with every process's growth beside it."""
    ordered = sorted(records, key=lambda r: r["allocated_mb"])
    chosen = dict(ordered[(len(ordered) - 1) // 2])
    chosen["allocated_mb_processes"] = [r["allocated_mb"] for r in records]
    return chosen


def gpu_summary(readings: list[dict | None], batch_size: int, timings: list[stats.ProcessTiming]) -> dict | None:
    """Energy per image (median over processes) and the clocks, power and clock event reasons seen."""
    if not any(readings):
        return None
    per_image = [r["energy_j"] / (t.summary.count * batch_size) if r and r["energy_j"] is not None else None
                 for r, t in zip(readings, timings)]
    present = [r for r in readings if r]
    clocks = [c for r in present for c in (r["sm_clock_mhz"] or {}).values()]
    reasons = sorted({reason for r in present for reason in r["clock_event_reasons"]})
    return {"energy_j_per_image": _median(per_image),
            "energy_method": "NVML total energy counter of the board over the timed phase / images timed "
                             "(idle gaps between iterations included)",
            "sm_clock_mhz": {"min": min(clocks), "max": max(clocks)} if clocks else None,
            "power_w_max": max((r["power_w"] or {}).get("max") or 0 for r in present) or None,
            "power_limit_w": present[0]["power_limit_w"],
            "clock_event_reasons": reasons, "throttled": any(r["throttled"] for r in present)}


@cache
def schema() -> dict:
    """The result schema: the static file, with the timing part and the loader names derived from the code."""
    document = json.loads(SCHEMA_PATH.read_text())
    document["properties"]["timing"] = {"anyOf": [{"type": "null"}, stats.json_schema(stats.Timing)]}
    document["properties"]["config"]["properties"]["loader"] = {"enum": list(data.LOADERS)}
    return document


def validate(result: dict) -> None:
    import jsonschema
    jsonschema.validate(result, schema())
