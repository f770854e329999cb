"""The typed timing record of a row, in the spirit of torch.utils.benchmark's Measurement.

One place for the field list: `Summary` (the statistics of one process's samples), `ProcessTiming` (one
measuring process: its raw samples, its summary and how its loop ran) and `Timing` (the row: every process,
the median of their medians and their spread). The result schema's `timing` part, the report and the
CSV columns are derived from these dataclasses (`json_schema`, `Timing.from_json`).
"""
from __future__ import annotations

import dataclasses
import math
import typing
from dataclasses import dataclass, field

import numpy as np

CONFIDENCE = 0.95


def _doc(text: str, **schema):
    return field(metadata={"description": text, **schema})


def median_ci(sorted_values, confidence: float = CONFIDENCE) -> tuple[float, float, float]:
    """Distribution-free confidence interval of the median from order statistics, with its exact coverage.

    The interval [x_(k+1), x_(n-k)] covers the median with probability 1 - 2 P(Bin(n, 1/2) <= k); k is the
    largest for which that reaches `confidence`. Below 6 values no interval reaches 95 %: it is then
    [min, max] and its coverage (93.8 % for 5 values, 87.5 % for 4) says so."""
    n = len(sorted_values)

    def log_pmf(j: int) -> float:
        return math.lgamma(n + 1) - math.lgamma(j + 1) - math.lgamma(n - j + 1) - n * math.log(2)

    cdf = math.exp(log_pmf(0))          # P(Bin(n, 1/2) <= k) for the current k
    k = 0
    while 2 * (k + 1) < n:
        next_cdf = cdf + math.exp(log_pmf(k + 1))
        if 1 - 2 * next_cdf < confidence:
            break
        k, cdf = k + 1, next_cdf
    coverage = max(0.0, 1 - 2 * cdf)
    return float(sorted_values[k]), float(sorted_values[n - 1 - k]), coverage


@dataclass(frozen=True)
class Summary:
    count: int = _doc("timed iterations", minimum=1)
    median: float = _doc("median, ms", exclusiveMinimum=0)
    mean: float = _doc("mean, ms")
    p90: float = _doc("90th percentile, ms")
    p99: float = _doc("99th percentile, ms")
    min: float = _doc("fastest iteration, ms")
    max: float = _doc("slowest iteration, ms")
    std: float = _doc("standard deviation (ddof 1), ms", minimum=0)
    iqr: float = _doc("interquartile range, ms", minimum=0)
    ci_low: float = _doc("lower end of the distribution-free confidence interval of the median, ms")
    ci_high: float = _doc("upper end of that interval, ms")
    ci_coverage: float = _doc("the interval's exact coverage (0.95 from 6 samples on; less below)",
                              minimum=0, maximum=1)
    noisy: bool = _doc("IQR / median above the configured ratio")

    @classmethod
    def of(cls, samples_ms, noisy_iqr_ratio: float = 0.10) -> Summary:
        values = np.sort(np.asarray(samples_ms, dtype=np.float64))
        if values.size == 0:
            raise ValueError("no timed iterations")
        median = float(np.median(values))
        q1, q3 = np.percentile(values, [25, 75])
        low, high, coverage = median_ci(values)
        return cls(count=int(values.size), median=median, mean=float(values.mean()),
                   p90=float(np.percentile(values, 90)), p99=float(np.percentile(values, 99)),
                   min=float(values[0]), max=float(values[-1]),
                   std=float(values.std(ddof=1)) if values.size > 1 else 0.0, iqr=float(q3 - q1),
                   ci_low=low, ci_high=high, ci_coverage=coverage,
                   noisy=bool(median > 0 and (q3 - q1) / median > noisy_iqr_ratio))


@dataclass(frozen=True)
class ProcessTiming:
    """One measuring process: every timed sample and how its loop ran."""
    samples_ms: list[float] = _doc("model time of every timed iteration, in order, ms")
    summary: Summary = _doc("statistics of the samples")
    warmup_iters: int = _doc("warm-up iterations before timing", minimum=0)
    warmup_seconds: float = _doc("wall time of the warm-up", minimum=0)
    timed_seconds: float = _doc("wall time of the timed phase, waiting for data included", minimum=0)
    stop: str = _doc("why timing stopped: ci (the median's interval reached the target width), "
                     "min (minimums reached, no width target), max_seconds (the target width was not reached "
                     "within the time cap)",
                     enum=["ci", "min", "max_seconds"])


@dataclass(frozen=True)
class Timing:
    """A row's model time per batch over its independent processes."""
    unit: str = _doc("unit of every time", const="ms")
    median: float = _doc("median of the per-process medians, ms", exclusiveMinimum=0)
    spread: float = _doc("(max - min) / median of the per-process medians; 0 with one process", minimum=0)
    processes: list[ProcessTiming] = _doc("every measuring process of the row, in the order they ran")
    pooled: Summary = _doc("statistics of all samples of all processes together")
    noisy: bool = _doc("a process's IQR / median is above the configured ratio")
    unstable: bool = _doc("the spread of the per-process medians is above the configured share")
    clock: str = _doc("how each call was timed")

    @classmethod
    def of(cls, processes: list[ProcessTiming], clock: str, noisy_iqr_ratio: float, unstable_spread: float
           ) -> Timing:
        medians = np.array([p.summary.median for p in processes])
        median = float(np.median(medians))
        spread = float((medians.max() - medians.min()) / median) if len(medians) > 1 else 0.0
        pooled = Summary.of([s for p in processes for s in p.samples_ms], noisy_iqr_ratio)
        return cls(median=median, spread=spread, processes=list(processes), pooled=pooled, unit="ms",
                   noisy=any(p.summary.noisy for p in processes), unstable=spread > unstable_spread, clock=clock)

    def to_json(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: dict) -> Timing:
        return _from_json(cls, data)


def _from_json(cls, data):
    hints = typing.get_type_hints(cls)
    values = {}
    for item in dataclasses.fields(cls):
        value = data[item.name]
        kind = hints[item.name]
        if dataclasses.is_dataclass(kind):
            value = _from_json(kind, value)
        elif typing.get_origin(kind) is list and dataclasses.is_dataclass(typing.get_args(kind)[0]):
            value = [_from_json(typing.get_args(kind)[0], entry) for entry in value]
        values[item.name] = value
    return cls(**values)


_JSON_TYPES = {int: "integer", float: "number", bool: "boolean", str: "string"}


def json_schema(cls) -> dict:
    """JSON schema of a dataclass of this module: types from the annotations, descriptions and bounds from
    each field's metadata. Every field is required; no other key is allowed."""
    hints = typing.get_type_hints(cls)
    properties = {}
    for item in dataclasses.fields(cls):
        kind = hints[item.name]
        if dataclasses.is_dataclass(kind):
            schema = json_schema(kind)
        elif typing.get_origin(kind) is list:
            (inner,) = typing.get_args(kind)
            schema = {"type": "array", "items": json_schema(inner) if dataclasses.is_dataclass(inner)
                      else {"type": _JSON_TYPES[inner]}}
        else:
            schema = {"type": _JSON_TYPES[kind]}
        properties[item.name] = {**schema, **item.metadata}
    return {"type": "object", "additionalProperties": False, "required": list(properties), "properties": properties}


def field_names(cls) -> list[str]:
    return [item.name for item in dataclasses.fields(cls)]
