"""Clocks and the measurement loop shared by every backend.

Warm-up runs until both `warmup_iters` and `warmup_seconds` are reached. Timing then runs at least
`min_iters` iterations and `min_seconds`, and on until the distribution-free 95 % interval of the median
is no wider than ± target_ci of it (torch.utils.benchmark's adaptive_autorange idea: a stable row stops
early, a noisy one gets more samples), or until `max_seconds` have passed (`stop: max_seconds`: the
target was not reached). `min_iters` is a floor even past `max_seconds`: a row never has fewer samples.
"""
from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from fmtbench.stats import ProcessTiming, Summary, median_ci


class CpuClock:
    name = "time.perf_counter around the call"

    def time(self, fn: Callable[[], object]) -> float:
        start = time.perf_counter()
        fn()
        return time.perf_counter() - start


class CudaClock:
    """Synchronises the device before starting (queued work is not ours) and before reading the clock;
    device-wide, so work a library queues on its own stream (ONNX Runtime) is included."""
    name = "torch.cuda.synchronize (device-wide) + time.perf_counter around the call"

    def __init__(self):
        import torch
        self._sync = torch.cuda.synchronize

    def time(self, fn: Callable[[], object]) -> float:
        self._sync()
        start = time.perf_counter()
        fn()
        self._sync()
        return time.perf_counter() - start


def clock_for(device: str):
    return CudaClock() if device == "cuda" else CpuClock()


@dataclass(frozen=True)
class Settings:
    repeats: int           # independent measuring processes per configuration
    warmup_iters: int
    warmup_seconds: float
    min_iters: int
    min_seconds: float
    max_seconds: float
    target_ci: float       # stop once the median's 95 % interval is within ± this share of it (0: off)

    @classmethod
    def from_config(cls, section: dict) -> Settings:
        """`section` is config.yaml's measurement.<device>, its defaults filled in by the schema."""
        return cls(**{name: section[name] for name in cls.__dataclass_fields__})


def _ci_reached(samples: list[float], target: float) -> bool:
    values = np.sort(np.asarray(samples))
    low, high, coverage = median_ci(values)
    median = float(np.median(values))
    return coverage >= 0.95 and median > 0 and (high - low) / 2 <= target * median


def measure(iteration: Callable[[], float], settings: Settings, *, min_iters: int | None = None,
            noisy_iqr_ratio: float = 0.10, on_timing_start: Callable[[], None] | None = None,
            now: Callable[[], float] = time.perf_counter) -> ProcessTiming:
    """`iteration()` runs one batch and returns its model time in seconds. `min_iters` raises the
    setting's minimum (a real loader needs whole rounds of its workers)."""
    least = max(settings.min_iters, min_iters or 0)
    warmup_iters = 0
    start = now()
    while warmup_iters < settings.warmup_iters or now() - start < settings.warmup_seconds:
        iteration()
        warmup_iters += 1
    warmup_seconds = now() - start
    if on_timing_start:
        on_timing_start()

    samples: list[float] = []
    stop = None
    next_check = least
    start = now()
    while stop is None:
        samples.append(iteration() * 1e3)
        elapsed = now() - start
        if len(samples) < least:
            continue
        if elapsed >= settings.max_seconds:
            stop = "max_seconds"
        elif elapsed >= settings.min_seconds:
            if settings.target_ci <= 0:
                stop = "min"
            elif len(samples) >= next_check:
                # The check sorts every sample: amortised over a tenth of the samples taken so far.
                next_check = len(samples) + max(1, len(samples) // 10)
                if _ci_reached(samples, settings.target_ci):
                    stop = "ci"
    timed_seconds = now() - start
    return ProcessTiming(samples_ms=samples, summary=Summary.of(samples, noisy_iqr_ratio),
                         warmup_iters=warmup_iters, warmup_seconds=warmup_seconds, timed_seconds=timed_seconds,
                         stop=stop)
