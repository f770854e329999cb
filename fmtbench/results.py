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
SCHEMA_VERSION = 3
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
           processes=None, transient: bool = False, attempt: int = 1, measurement=None, contention=None) -> dict:
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
        # the settings it was measured with (timing.Settings.record): the report's method text reads them
        "measurement": measurement,
        # what else used the machine while the row was timed (fmtbench.contention.row_summary)
        "contention": contention,
    }


def _median(values):
    values = [v for v in values if v is not None]
    return float(np.median(values)) if values else None


def throughput(batch_size: int, timing: stats.Timing, processes: list[dict]) -> dict:
    """The row's rates. Dummy loader: `model_fps` is the back-to-back rate (Timing.throughput_fps; on the CPU,
    batch / median call time), the model alone. Real loaders: `model_fps` is batch / the median model time
    measured in the same run under the loader's load (CUDA events on the model's stream), and `end_to_end_fps`
    the median over the processes of images / wall time of the timed phase, with the decode capacity and how
    close e2e came to what the pipeline allows: min(model FPS, capacity) where the producer runs beside the
    model (workers, decode threads), 1 / (1/model + 1/capacity) where the measuring process decodes itself."""
    latency_fps = batch_size / (timing.median / 1e3)
    loaders = [p["loader"] for p in processes if p.get("loader")]
    if not loaders:
        model_fps = timing.throughput_fps or latency_fps
        return {"model_fps": model_fps, "basis": "back_to_back" if timing.throughput_fps else "latency",
                "latency_fps": latency_fps, "end_to_end_fps": None}
    model_fps = latency_fps
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
        "basis": "under_load",
        "latency_fps": None,
        "end_to_end_fps": end_to_end,
        "end_to_end_spread": stats.spread_of(e2e) if end_to_end else 0.0,
        "decode_capacity_fps": capacity,
        "capacity_spread": stats.spread_of([entry["decode_capacity_fps"] for entry in loaders
                                            if entry["decode_capacity_fps"]]) if capacity else None,
        "expected_fps": expected,
        "pipeline_efficiency": end_to_end / expected if expected else None,
        "stalled": bool(expected and end_to_end < PIPELINE_EFFICIENCY * expected),
        "above_model_fps": bool(end_to_end > model_fps),
        "data_wait_ms": {key: _median(w[key] for w in waits) for key in ("median", "mean", "p90", "max")}
        if waits else None,
        "producer": loaders[0]["producer"],
        "distinct_images_per_batch": loaders[0].get("distinct_images_per_batch"),
    }


def memory_summary(records: list[dict]) -> dict:
    """The record of the process with the median growth, with every process's growth beside it. Processes in
    which the configuration reused state an earlier one made (`shared`: a recorded CUDA graph) are left out
    where another process has the configuration's own figure."""
    own = [r for r in records if not r.get("shared")] or records
    ordered = sorted(own, key=lambda r: r["allocated_mb"])
    chosen = dict(ordered[(len(ordered) - 1) // 2])
    chosen["allocated_mb_processes"] = [r["allocated_mb"] for r in records]
    return chosen


ENERGY_METHOD = ("NVML total energy counter of the board over the back-to-back phase (calls queued without a "
                 "gap, at least measurement.energy_seconds, in the row's first process) / images run in it")


def gpu_summary(readings: list[dict | None], batch_size: int, timings: list[stats.ProcessTiming]) -> dict | None:
    """Energy per image over the back-to-back phase (median over the processes that read it) and the clocks,
    power and clock event reasons seen."""
    if not any(readings):
        return None
    per_image, phase_seconds = [], []
    for reading, process in zip(readings, timings):
        energy = (reading or {}).get("energy") or {}
        if energy.get("joules") is not None and process.throughput is not None:
            images = process.throughput.blocks * process.throughput.calls_per_block * batch_size
            per_image.append(energy["joules"] / images)
            phase_seconds.append(energy["seconds"])
    present = [r for r in readings if r]
    clocks = [c for r in present for c in (r["sm_clock_mhz"] or {}).values()]
    reasons = sorted({reason for r in present for reason in r["clock_event_reasons"]})
    return {"energy_j_per_image": _median(per_image), "energy_method": ENERGY_METHOD,
            "energy_phase_seconds": max(phase_seconds) if phase_seconds else None,
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
