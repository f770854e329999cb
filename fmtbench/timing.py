"""Clocks and the measurement loop shared by every backend.

The loop runs warm-up iterations until both `warmup_iters` and `warmup_seconds` are reached, then timed
iterations until both `min_iters` and `min_seconds` are reached, stopping at `max_seconds` regardless.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable


class CpuClock:
    name = "time.perf_counter"

    def time(self, fn: Callable[[], object]) -> float:
        start = time.perf_counter()
        fn()
        return time.perf_counter() - start


class CudaClock:
    """Synchronises before starting (queued work is not ours) and before reading the clock."""
    name = "torch.cuda.synchronize + time.perf_counter"

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
    warmup_iters: int
    warmup_seconds: float
    min_iters: int
    min_seconds: float
    max_seconds: float

    @classmethod
    def from_config(cls, section: dict) -> "Settings":
        return cls(**{name: section[name] for name in cls.__dataclass_fields__})


@dataclass
class Measurement:
    """Per-iteration model times (s) of the timed phase, and what else the loop saw."""
    times: list[float] = field(default_factory=list)
    warmup_iters: int = 0
    warmup_seconds: float = 0.0
    timed_seconds: float = 0.0        # wall time of the timed phase, waiting for data included
    truncated: bool = False           # max_seconds came before min_iters / min_seconds


def measure(iteration: Callable[[], float], settings: Settings, now: Callable[[], float] = time.perf_counter
            ) -> Measurement:
    """`iteration()` runs one batch and returns its model time in seconds."""
    result = Measurement()
    start = now()
    while (result.warmup_iters < settings.warmup_iters
           or now() - start < settings.warmup_seconds):
        iteration()
        result.warmup_iters += 1
    result.warmup_seconds = now() - start

    start = now()
    while True:
        result.times.append(iteration())
        elapsed = now() - start
        if len(result.times) >= settings.min_iters and elapsed >= settings.min_seconds:
            break
        if elapsed >= settings.max_seconds:
            result.truncated = True
            break
    result.timed_seconds = now() - start
    return result
