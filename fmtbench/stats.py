"""The typed timing record of a row, in the spirit of torch.utils.benchmark's Measurement.

One place for the field list: `Summary` (the statistics of one process's samples), `ProcessTiming` (one
measuring process: its raw samples, its summary, how its loop ran and its back-to-back throughput) and
`Timing` (the row: every process, the median of their medians with the interval that belongs to it, their
spread, and the row's throughput). The result schema's `timing` part is derived from these dataclasses
(typedjson); the CSV's timing columns are named after their fields (report/frame.py).

Two kinds of per-call sample (`ProcessTiming.kind`):
- `latency`: one call between two device-wide synchronisations (CUDA) or perf_counter readings (CPU): what a
  request served alone waits, launch and synchronisation included.
- `under_load`: CUDA events on the model's stream around each call while a real loader feeds it back to back:
  the model's own time beside the loader's work, without waiting for the loader's stream.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from fmtbench.scope import Scope
from fmtbench.typedjson import doc, to_json

CONFIDENCE = 0.95


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
    count: int = doc("timed iterations", minimum=1)
    median: float = doc("median, ms", exclusiveMinimum=0)
    mean: float = doc("mean, ms")
    p90: float = doc("90th percentile, ms")
    p99: float = doc("99th percentile, ms")
    min: float = doc("fastest iteration, ms")
    max: float = doc("slowest iteration, ms")
    std: float = doc("standard deviation (ddof 1), ms", minimum=0)
    iqr: float = doc("interquartile range, ms", minimum=0)
    ci_low: float = doc("lower end of the distribution-free confidence interval of the median, ms")
    ci_high: float = doc("upper end of that interval, ms")
    ci_coverage: float = doc("the interval's exact coverage (0.95 from 6 samples on; less below)",
                              minimum=0, maximum=1)
    noisy: bool = doc("IQR / median above the configured ratio")

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


KINDS = tuple(scope.value for scope in Scope)  # what a row times (fmtbench.scope)


@dataclass(frozen=True)
class Throughput:
    """Calls back to back, one synchronisation per block: what a serving loop sustains (host launches overlap
    the device's work on the previous call), in the spirit of torch.utils.benchmark's blocked_autorange."""
    images_per_s: float = doc("median over the blocks of images / wall time of the block", exclusiveMinimum=0)
    blocks: int = doc("timed blocks", minimum=1)
    calls_per_block: int = doc("calls in each block, one synchronisation at its end", minimum=1)
    seconds: float = doc("wall time of the whole phase", minimum=0)
    block_spread: float = doc("(fastest - slowest) / median of the blocks' rates", minimum=0)

    @classmethod
    def of(cls, block_seconds: list[float], calls_per_block: int, batch_size: int) -> Throughput:
        rates = np.array([batch_size * calls_per_block / seconds for seconds in block_seconds])
        median = float(np.median(rates))
        return cls(images_per_s=median, blocks=len(rates), calls_per_block=calls_per_block,
                   seconds=float(sum(block_seconds)), block_spread=float((rates.max() - rates.min()) / median))


@dataclass(frozen=True)
class ProcessTiming:
    """One measuring process's view of one configuration: every timed sample and how its loop ran."""
    kind: str = doc("latency: each call between two synchronisations; under_load: CUDA events on the model's "
                     "stream while a real loader fed it back to back", enum=list(KINDS))
    samples_ms: list[float] = doc("model time of every timed iteration, in order, ms")
    summary: Summary = doc("statistics of the samples")
    warmup_iters: int = doc("warm-up iterations before timing", minimum=0)
    warmup_seconds: float = doc("wall time of the warm-up", minimum=0)
    timed_seconds: float = doc("wall time of the timed phase, waiting for data included", minimum=0)
    stop: str = doc("why timing stopped: ci (the median's interval reached the target width), "
                     "min (minimums reached, no width target), max_seconds (the target width was not reached "
                     "within the time cap), rounds (a real loader's rounds of its workers)",
                     enum=["ci", "min", "max_seconds", "rounds"])
    throughput: Throughput | None = doc("back-to-back phase after the latency samples (dummy loader on CUDA); "
                                         "null where not measured")
    gpu_ms: float | None = doc("median device time of one call with its launches hidden (a spin kernel queued "
                               "before it keeps the GPU busy while the host queues the call), ms; null where not "
                               "measured (CPU, real loaders, a library on a stream of its own)", omitted=True)
    gpu_retaken: int | None = doc("device-time samples taken again behind a spin twice as long because the GPU "
                                  "had reached the call before the host had queued it (timing.GpuTime); absent "
                                  "where no device time was measured, or measured before the check", omitted=True,
                                  minimum=0)
    gpu_unhidden: int | None = doc("device-time samples no spin hid after every retake (kept in gpu_ms: an upper "
                                   "bound); absent as gpu_retaken", omitted=True, minimum=0)
    steady_batches: int | None = doc("under load: batches timed after the loader's buffered ones (its queues "
                                     "full at the start); absent for latency samples", omitted=True)
    steady_seconds: float | None = doc("under load: wall time of those batches (from the first batch the loader "
                                       "had to make during the phase to the end)", omitted=True)

    @property
    def gpu_busy_share(self) -> float | None:
        """How much of a synchronised call the GPU is busy: device time / call time (1: the GPU sets the figure;
        well below 1: the host's launch rate does)."""
        return self.gpu_ms / self.summary.median if self.gpu_ms and self.summary.median > 0 else None

    @property
    def rate_busy_share(self) -> float | None:
        """How much of the back-to-back phase the GPU is busy: device time × calls / the phase's wall time. A call
        the GPU finishes ahead of its synchronisation can still be queued slower than the GPU runs it, back to back
        (eager torch fp16 at batch 64 on an H100, 2026-12-07: 0.95 of a synchronised call, 0.59 back to back)."""
        rate = self.throughput
        if not self.gpu_ms or rate is None or rate.seconds <= 0:
            return None
        return self.gpu_ms * 1e-3 * rate.blocks * rate.calls_per_block / rate.seconds


def spread_of(values) -> float:
    """(max - min) / median; 0 for fewer than two values."""
    values = np.asarray(values, dtype=np.float64)
    return float((values.max() - values.min()) / np.median(values)) if values.size > 1 else 0.0


def unstable(processes: list[ProcessTiming], spread: float) -> bool:
    """The unstable rule: a row's processes disagree by more than `spread` (settings.Thresholds.unstable_spread) on
    their medians or on their back-to-back rates."""
    rates = [p.throughput.images_per_s for p in processes if p.throughput is not None]
    return spread_of([p.summary.median for p in processes]) > spread or spread_of(rates) > spread


def host_bound(busy: float | None, share: float, rate_busy: float | None = None) -> bool | None:
    """The host-bound rule: the GPU busy for less than `share` (settings.Thresholds.host_bound_share) of a
    synchronised call (`busy`) or of the back-to-back phase (`rate_busy`) in some process (each the lowest share
    over the processes); None where neither was measured."""
    measured = [value for value in (busy, rate_busy) if value is not None]
    return bool(min(measured) < share) if measured else None


@dataclass(frozen=True)
class Timing:
    """A row's model time per batch over its independent processes."""
    unit: str = doc("unit of every time", const="ms")
    kind: str = doc("what each sample is (ProcessTiming.kind)", enum=list(KINDS))
    median: float = doc("median of the per-process medians, ms", exclusiveMinimum=0)
    ci_low: float = doc("lower end of the distribution-free interval of the median of the per-process "
                         "medians (order statistics of those medians), ms")
    ci_high: float = doc("upper end of that interval, ms")
    ci_coverage: float = doc("that interval's exact coverage: 0.5 with 2 processes, 0.75 with 3, 0.94 with 5, "
                              "0 with 1 (a single process: the interval is the process's own, see processes)",
                              minimum=0, maximum=1)
    p90: float = doc("median over the processes of their 90th percentile, ms")
    p99: float = doc("median over the processes of their 99th percentile, ms")
    spread: float = doc("(max - min) / median of the per-process medians; 0 with one process", minimum=0)
    processes: list[ProcessTiming] = doc("every measuring process of the row, in the order they ran")
    pooled: Summary = doc("statistics of all samples of all processes together (not the row's figures: the "
                           "processes' samples are not one distribution when the processes disagree)")
    noisy: bool = doc("a process's IQR / median is above the configured ratio")
    unstable: bool = doc("the spread of the per-process medians, or of their back-to-back rates, is above the "
                          "configured share")
    clock: str = doc("how each call was timed")
    throughput_fps: float | None = doc("median over the processes of their back-to-back images / s; null where "
                                        "not measured")
    throughput_spread: float | None = doc("(max - min) / median of the processes' back-to-back rates")
    gpu_busy_share: float | None = doc("the lowest over the processes of device time / call time "
                                       "(ProcessTiming.gpu_ms / median); absent where not measured", omitted=True)
    rate_busy_share: float | None = doc("the lowest over the processes of device time × calls / wall time of the "
                                        "back-to-back phase (ProcessTiming.rate_busy_share); absent where not "
                                        "measured", omitted=True)
    host_bound: bool | None = doc("in some process the GPU was busy for less than the configured share of a "
                                  "synchronised call or of the back-to-back phase: the row's figures are set by the "
                                  "host's launch rate, which moves between processes and runs; absent where not "
                                  "measured", omitted=True)

    @property
    def process_range(self) -> tuple[float, float]:
        """(fastest, slowest) of the per-process medians, ms: a host-bound row's honest range."""
        medians = [p.summary.median for p in self.processes]
        return min(medians), max(medians)

    @classmethod
    def of(cls, processes: list[ProcessTiming], clock: str, noisy_iqr_ratio: float, unstable_spread: float,
           host_bound_share: float) -> Timing:
        medians = np.sort([p.summary.median for p in processes])
        if len(medians) > 1:
            low, high, coverage = median_ci(medians)
        else:
            low, high, coverage = processes[0].summary.ci_low, processes[0].summary.ci_high, 0.0
        spread = spread_of(medians)
        pooled = Summary.of([s for p in processes for s in p.samples_ms], noisy_iqr_ratio)
        rates = [p.throughput.images_per_s for p in processes if p.throughput is not None]
        shares = [p.gpu_busy_share for p in processes if p.gpu_busy_share is not None]
        busy = min(shares) if shares else None
        rate_shares = [p.rate_busy_share for p in processes if p.rate_busy_share is not None]
        rate_busy = min(rate_shares) if rate_shares else None
        return cls(unit="ms", kind=processes[0].kind, median=float(np.median(medians)), ci_low=low, ci_high=high,
                   ci_coverage=coverage, p90=float(np.median([p.summary.p90 for p in processes])),
                   p99=float(np.median([p.summary.p99 for p in processes])), spread=spread,
                   processes=list(processes), pooled=pooled, noisy=any(p.summary.noisy for p in processes),
                   unstable=unstable(processes, unstable_spread), clock=clock,
                   throughput_fps=float(np.median(rates)) if rates else None,
                   throughput_spread=spread_of(rates) if rates else None, gpu_busy_share=busy,
                   rate_busy_share=rate_busy, host_bound=host_bound(busy, host_bound_share, rate_busy))

    def to_json(self) -> dict:
        return to_json(self)
