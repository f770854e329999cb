"""Clocks and the measurement loops shared by every backend.

Per configuration, after its first call (autotuning at a new shape) and a warm-up of at least `warmup_iters`
and `warmup_seconds`:

- **Latency** (dummy loader): each call between two synchronisations, at least `min_iters` and `min_seconds`,
  then on until the distribution-free 95 % interval of the median is within ± target_ci of it (the idea of
  torch.utils.benchmark's adaptive_autorange: a stable row stops early, a noisy one gets more samples) or
  `max_seconds` have passed. `min_iters` is a floor even past `max_seconds`.
- **Throughput** (dummy loader, CUDA): blocks of calls back to back with one synchronisation at the end of
  each block (torch.utils.benchmark's blocked idea: the host's launches overlap the previous call's kernels,
  as in a serving loop), for at least `throughput_seconds` — or `energy_seconds` where the board's energy is
  read over the phase. On the CPU a call is synchronous, so back to back is the latency loop itself.
- **Under load** (real loaders): batches fetched, prepared and run back to back for whole rounds of the
  loader's workers; the end-to-end rate is images / wall time of the phase, and the model's own time is read
  from CUDA events recorded on the model's stream around each call (no host synchronisation between calls,
  so the loader's stream is never waited for). On the CPU: perf_counter around each call.
"""
from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from fmtbench.stats import ProcessTiming, Summary, Throughput, median_ci

# A throughput block lasts about this long (at least MIN_BLOCK_CALLS calls): long enough that one
# synchronisation per block costs nothing measurable, short enough to give several blocks per phase.
BLOCK_SECONDS = 0.05
MIN_BLOCK_CALLS = 5
MIN_BLOCKS = 3


class CpuClock:
    name = "time.perf_counter around the call"

    def time(self, fn: Callable[[], object]) -> float:
        start = time.perf_counter()
        fn()
        return time.perf_counter() - start

    def sync(self) -> None:
        pass


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

    def sync(self) -> None:
        self._sync()


class StreamEvents:
    """Per-call model time on the calling thread's current stream: a CUDA event before and after each call,
    read once the phase is over. The host never waits between calls, and the loader's own stream is not
    waited for. A library that runs on a stream of its own returns only when its work is done (ONNX Runtime
    synchronises its stream at the end of each run), so the events around its call still bracket it."""
    name = "CUDA events on the model's stream around each call, back to back (read after the phase)"

    def __init__(self):
        import torch
        self._event = torch.cuda.Event
        self._stream = torch.cuda.current_stream
        self._pairs: list = []

    def run(self, fn: Callable[[], object]) -> None:
        start, end = self._event(enable_timing=True), self._event(enable_timing=True)
        start.record(self._stream())
        fn()
        end.record(self._stream())
        self._pairs.append((start, end))

    def read_ms(self) -> list[float]:
        if self._pairs:
            self._pairs[-1][1].synchronize()
        times = [start.elapsed_time(end) for start, end in self._pairs]
        self._pairs = []
        return times


class PerfCounterCalls:
    """The CPU counterpart of StreamEvents: a CPU call is synchronous, so perf_counter brackets it."""
    name = "time.perf_counter around each call, back to back"

    def __init__(self):
        self._times: list[float] = []

    def run(self, fn: Callable[[], object]) -> None:
        start = time.perf_counter()
        fn()
        self._times.append((time.perf_counter() - start) * 1e3)

    def read_ms(self) -> list[float]:
        times, self._times = self._times, []
        return times


def clock_for(device: str):
    return CudaClock() if device == "cuda" else CpuClock()


def call_timer_for(device: str):
    return StreamEvents() if device == "cuda" else PerfCounterCalls()


@dataclass(frozen=True)
class Settings:
    processes: int         # independent measuring processes per row
    max_processes: int     # ... up to this many for rows whose processes disagree by more than unstable_spread
    warmup_iters: int
    warmup_seconds: float
    min_iters: int
    min_seconds: float
    max_seconds: float
    target_ci: float       # stop once the median's 95 % interval is within ± this share of it (0: off)
    throughput_seconds: float  # back-to-back phase of a dummy row (CUDA); 0: not measured
    energy_seconds: float      # ... at least this long in a row's first process, where the board's energy is read

    @classmethod
    def from_config(cls, section: dict) -> Settings:
        """`section` is config.yaml's measurement.<device>, its defaults filled in by the schema."""
        return cls(**{name: section[name] for name in cls.__dataclass_fields__})

    def record(self) -> dict:
        """What the result JSON says about how the row was measured (the report's method text reads it)."""
        return {name: getattr(self, name) for name in self.__dataclass_fields__}


def _ci_reached(samples: list[float], target: float) -> bool:
    values = np.sort(np.asarray(samples))
    low, high, coverage = median_ci(values)
    median = float(np.median(values))
    return coverage >= 0.95 and median > 0 and (high - low) / 2 <= target * median


def warm_up(iteration: Callable[[], object], settings: Settings,
            now: Callable[[], float] = time.perf_counter) -> tuple[int, float]:
    """Runs until both `warmup_iters` and `warmup_seconds` are reached; returns (iterations, seconds)."""
    count = 0
    start = now()
    while count < settings.warmup_iters or now() - start < settings.warmup_seconds:
        iteration()
        count += 1
    return count, now() - start


def measure(iteration: Callable[[], float], settings: Settings, *, noisy_iqr_ratio: float = 0.10,
            on_timing_start: Callable[[], None] | None = None,
            now: Callable[[], float] = time.perf_counter) -> ProcessTiming:
    """Latency: `iteration()` runs one synchronised call and returns its time in seconds."""
    warmup_iters, warmup_seconds = warm_up(iteration, settings, now)
    if on_timing_start:
        on_timing_start()
    samples: list[float] = []
    stop = None
    next_check = settings.min_iters
    start = now()
    while stop is None:
        samples.append(iteration() * 1e3)
        elapsed = now() - start
        if len(samples) < settings.min_iters:
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
    return ProcessTiming(kind="latency", samples_ms=samples, summary=Summary.of(samples, noisy_iqr_ratio),
                         warmup_iters=warmup_iters, warmup_seconds=warmup_seconds, timed_seconds=timed_seconds,
                         stop=stop, throughput=None)


def calls_per_block(latency_ms: float) -> int:
    return max(MIN_BLOCK_CALLS, math.ceil(BLOCK_SECONDS * 1e3 / max(latency_ms, 1e-6)))


def measure_throughput(call: Callable[[], object], sync: Callable[[], None], batch_size: int, latency_ms: float,
                       seconds: float, now: Callable[[], float] = time.perf_counter) -> Throughput:
    """Blocks of calls back to back, one `sync()` at the end of each, for at least `seconds` and MIN_BLOCKS
    blocks. The block length comes from the latency median, so every block lasts about BLOCK_SECONDS."""
    calls = calls_per_block(latency_ms)
    blocks: list[float] = []
    sync()
    phase = now()
    while len(blocks) < MIN_BLOCKS or now() - phase < seconds:
        start = now()
        for _ in range(calls):
            call()
        sync()
        blocks.append(now() - start)
    return Throughput.of(blocks, calls, batch_size)


def measure_under_load(fetch: Callable[[], object], run: Callable[[object], object], timer, sync: Callable[[], None],
                       settings: Settings, batches: int, *, noisy_iqr_ratio: float = 0.10,
                       on_timing_start: Callable[[], None] | None = None,
                       now: Callable[[], float] = time.perf_counter) -> tuple[ProcessTiming, float]:
    """A real loader's phase: `fetch()` gives the next prepared input (waiting for the loader), `run(x)` the
    model's call, timed by `timer` (StreamEvents / PerfCounterCalls). Warm-up, then `batches` batches back to
    back (whole rounds of the workers, and at least `min_iters`). Returns the model's per-call times and the
    wall time of the timed phase (the end-to-end rate is images / that time)."""
    def iteration():
        prepared = fetch()
        timer.run(lambda: run(prepared))

    warmup_iters, warmup_seconds = warm_up(iteration, settings, now)
    sync()
    timer.read_ms()  # the warm-up's calls
    if on_timing_start:
        on_timing_start()
    start = now()
    for _ in range(max(batches, settings.min_iters)):
        iteration()
    sync()
    timed_seconds = now() - start
    samples = timer.read_ms()
    return ProcessTiming(kind="under_load", samples_ms=samples, summary=Summary.of(samples, noisy_iqr_ratio),
                         warmup_iters=warmup_iters, warmup_seconds=warmup_seconds, timed_seconds=timed_seconds,
                         stop="rounds", throughput=None), timed_seconds
