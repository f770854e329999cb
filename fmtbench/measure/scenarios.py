"""How a configuration is timed: scenarios, each an object with one `run` returning a typed timing (in the spirit
of MLPerf LoadGen: the system under test never times itself; the session only runs).

Per configuration, after its first call (autotuning at a new shape) and a warm-up of at least `warmup_iters`
and `warmup_seconds`:

- `Latency` (dummy loader): each call between two synchronisations, at least `min_iters` and `min_seconds`,
  then on until the distribution-free 95 % interval of the median is within ± target_ci of it (the idea of
  torch.utils.benchmark's adaptive_autorange: a stable row stops early, a noisy one gets more samples) or
  `max_seconds` have passed. `min_iters` is a floor even past `max_seconds`.
- `BackToBack` (dummy loader, CUDA): blocks of calls back to back with one synchronisation at the end of each
  block (torch.utils.benchmark's blocked idea: the host's launches overlap the previous call's kernels, as in a
  serving loop), for at least `throughput_seconds` — or `energy_seconds` where the board's energy is read over
  the phase. On the CPU a call is synchronous, so back to back is the latency loop itself.
- `UnderLoad` (real loaders): batches fetched, prepared and run back to back for whole rounds of the loader's
  workers; the end-to-end rate is images / wall time of the phase, and the model's own time is read from CUDA
  events recorded on the model's stream around each call (no host synchronisation between calls, so the
  loader's stream is never waited for). On the CPU: perf_counter around each call.

A configuration runs the scenario of its loader's scope (`data.Loader.scenario`): `ModelAlone` (latency, then back to
back) or `EndToEnd` (under load).
"""
from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import replace

import numpy as np

from fmtbench.measure import timing
from fmtbench.measure.messages import Mark
from fmtbench.scope import Scope
from fmtbench.settings import DeviceSettings
from fmtbench.stats import ProcessTiming, Summary, Throughput, median_ci

log = logging.getLogger(__name__)

# A throughput block lasts about this long (at least MIN_BLOCK_CALLS calls): long enough that one
# synchronisation per block costs nothing measurable, short enough to give several blocks per phase.
BLOCK_SECONDS = 0.05
MIN_BLOCK_CALLS = 5
MIN_BLOCKS = 3
# Calls whose device time is read behind a spin kernel (ModelAlone on CUDA): the median is the row's GPU time.
GPU_TIME_CALLS = 7
Clock = Callable[[], float]


def _ci_reached(samples: list[float], target: float) -> bool:
    values = np.sort(np.asarray(samples))
    low, high, coverage = median_ci(values)
    median = float(np.median(values))
    return coverage >= 0.95 and median > 0 and (high - low) / 2 <= target * median


def warm_up(iteration: Callable[[], object], settings: DeviceSettings, now: Clock = time.perf_counter
            ) -> tuple[int, float]:
    """Runs until both `warmup_iters` and `warmup_seconds` are reached; returns (iterations, seconds)."""
    count = 0
    start = now()
    while count < settings.warmup_iters or now() - start < settings.warmup_seconds:
        iteration()
        count += 1
    return count, now() - start


class Latency:
    """Each call between two synchronisations: `step()` runs one synchronised call and returns its seconds."""

    def __init__(self, settings: DeviceSettings, noisy_iqr_ratio: float, now: Clock = time.perf_counter):
        self.settings, self.noisy_iqr_ratio, self.now = settings, noisy_iqr_ratio, now

    def run(self, step: Callable[[], float], on_timing_start: Callable[[], None] | None = None) -> ProcessTiming:
        settings, now = self.settings, self.now
        warmup_iters, warmup_seconds = warm_up(step, settings, now)
        if on_timing_start:
            on_timing_start()
        samples: list[float] = []
        stop = None
        next_check = settings.min_iters
        start = now()
        while stop is None:
            samples.append(step() * 1e3)
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
        return ProcessTiming(kind=Scope.MODEL_ALONE.value, samples_ms=samples,
                             summary=Summary.of(samples, self.noisy_iqr_ratio),
                             warmup_iters=warmup_iters, warmup_seconds=warmup_seconds, timed_seconds=timed_seconds,
                             stop=stop, throughput=None)


def calls_per_block(latency_ms: float) -> int:
    return max(MIN_BLOCK_CALLS, math.ceil(BLOCK_SECONDS * 1e3 / max(latency_ms, 1e-6)))


class BackToBack:
    """Blocks of calls back to back, one `sync()` at the end of each, for at least `seconds` and MIN_BLOCKS
    blocks. The block length comes from the latency median, so every block lasts about BLOCK_SECONDS."""

    def __init__(self, seconds: float, now: Clock = time.perf_counter):
        self.seconds, self.now = seconds, now

    def run(self, call: Callable[[], object], sync: Callable[[], None], batch_size: int, latency_ms: float
            ) -> Throughput:
        now = self.now
        calls = calls_per_block(latency_ms)
        blocks: list[float] = []
        sync()
        phase = now()
        while len(blocks) < MIN_BLOCKS or now() - phase < self.seconds:
            start = now()
            for _ in range(calls):
                call()
            sync()
            blocks.append(now() - start)
        return Throughput.of(blocks, calls, batch_size)


class UnderLoad:
    """A real loader's phase: `fetch()` gives the next prepared input (waiting for the loader), `run(x)` the
    model's call, timed by `timer` (timing.StreamEvents / PerfCounterCalls). Warm-up, then `buffered` batches the
    loader holds ready (its queues are full when the phase starts), then `batches` more back to back (whole rounds
    of the workers, and at least `min_iters`). The timing's `timed_seconds` is the wall time of the whole phase;
    the end-to-end rate is taken over the batches after the buffered ones (`steady_batches` / `steady_seconds`),
    each of which the loader had to make during the phase: a rate above what the loader can make is then not
    the start-up stock."""

    def __init__(self, settings: DeviceSettings, noisy_iqr_ratio: float, batches: int, buffered: int = 0,
                 now: Clock = time.perf_counter):
        self.settings, self.noisy_iqr_ratio, self.batches, self.now = settings, noisy_iqr_ratio, batches, now
        self.buffered = buffered

    def run(self, fetch: Callable[[], object], run: Callable[[object], object], timer, sync: Callable[[], None],
            on_timing_start: Callable[[], None] | None = None) -> ProcessTiming:
        def iteration():
            prepared = fetch()
            fetched.append(self.now())
            timer.run(lambda: run(prepared))

        fetched: list[float] = []
        warmup_iters, warmup_seconds = warm_up(iteration, self.settings, self.now)
        sync()
        timer.read_ms()  # the warm-up's calls
        if on_timing_start:
            on_timing_start()
        fetched.clear()
        start = self.now()
        for _ in range(self.buffered + max(self.batches, self.settings.min_iters)):
            iteration()
        sync()
        end = self.now()
        samples = timer.read_ms()
        steady_from = fetched[self.buffered - 1] if self.buffered else start
        return ProcessTiming(kind=Scope.END_TO_END.value, samples_ms=samples,
                             summary=Summary.of(samples, self.noisy_iqr_ratio),
                             warmup_iters=warmup_iters, warmup_seconds=warmup_seconds, timed_seconds=end - start,
                             stop="rounds", throughput=None, steady_batches=len(fetched) - self.buffered,
                             steady_seconds=end - steady_from)


# --- a configuration's scenario ----------------------------------------------------------------------------

class ModelAlone:
    """The dummy loader: latency samples, then (CUDA) the back-to-back phase; on the CPU, where a call is
    synchronous, each timed call is its own block."""

    def __init__(self, settings: DeviceSettings, noisy_iqr_ratio: float, device: str, *, energy: bool, batches: int):
        self.settings, self.noisy_iqr_ratio, self.device, self.energy = settings, noisy_iqr_ratio, device, energy

    def run(self, session, source, clock, batch_size: int, mark: Callable[[Mark], None]) -> ProcessTiming:
        def step() -> float:
            prepared = session.prepare(source.next())
            return clock.time(lambda: session.run(prepared))

        process = Latency(self.settings, self.noisy_iqr_ratio).run(step, _timing_starts(source, mark))
        if clock.synchronous:
            return replace(process, throughput=Throughput.of([ms / 1e3 for ms in process.samples_ms], 1, batch_size))
        if not getattr(session, "own_stream", False):
            prepared = session.prepare(source.next())
            gpu = timing.GpuTime()
            queued = getattr(session, "run_queued", session.run)  # a library's call without its own wait at the end
            times = [gpu.time(lambda: queued(prepared), process.summary.median) for _ in range(GPU_TIME_CALLS)]
            process = replace(process, gpu_ms=float(np.median(times)), gpu_retaken=gpu.retaken,
                              gpu_unhidden=gpu.unhidden)
            if gpu.retaken or gpu.unhidden:
                log.info("batch %d: %d device-time sample(s) taken again behind a longer spin, %d of %d not hidden "
                         "by any (kept)", batch_size, gpu.retaken, gpu.unhidden, GPU_TIME_CALLS)
        settings = self.settings
        if settings.throughput_seconds <= 0:
            return process
        prepared = session.prepare(source.next())
        seconds = max(settings.throughput_seconds, settings.energy_seconds if self.energy else 0.0)
        mark(Mark.ENERGY_START)
        throughput = BackToBack(seconds).run(lambda: session.run(prepared), clock.sync, batch_size,
                                             process.summary.median)
        mark(Mark.ENERGY_END)
        return replace(process, throughput=throughput)


class EndToEnd:
    """A real loader feeding the model: whole rounds of its workers back to back."""

    def __init__(self, settings: DeviceSettings, noisy_iqr_ratio: float, device: str, *, energy: bool, batches: int):
        self.settings, self.noisy_iqr_ratio, self.device, self.batches = settings, noisy_iqr_ratio, device, batches

    def run(self, session, source, clock, batch_size: int, mark: Callable[[Mark], None]) -> ProcessTiming:
        return UnderLoad(self.settings, self.noisy_iqr_ratio, self.batches, source.buffered_batches()).run(
            lambda: session.prepare(source.next()), session.run, timing.call_timer_for(self.device), clock.sync,
            _timing_starts(source, mark))


def _timing_starts(source, mark: Callable[[Mark], None]) -> Callable[[], None]:
    def starts() -> None:
        source.start_timing()
        mark(Mark.TIMING_START)
    return starts


SCENARIOS = {Scope.MODEL_ALONE: ModelAlone, Scope.END_TO_END: EndToEnd}


def for_configuration(scope: Scope, settings: DeviceSettings, noisy_iqr_ratio: float, device: str, *, energy: bool,
                      batches: int):
    """The scenario of a loader's scope (data.Loader.scenario), set up for one configuration."""
    return SCENARIOS[scope](settings, noisy_iqr_ratio, device, energy=energy, batches=batches)
