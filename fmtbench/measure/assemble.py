"""A row from what its measuring processes read: the row's timing, rates, memory, energy, contention and accuracy
(results.Row). Every figure of a row is drawn here, from the processes' readings, by one rule each."""
from __future__ import annotations

from dataclasses import asdict

import numpy as np

from fmtbench import results, row_parts, stats
from fmtbench.measure import contention
from fmtbench.measure.messages import Reading
from fmtbench.measure.preparation import Prepared
from fmtbench.measure.request import Request
from fmtbench.measure.schedule import Gathered, Measured

ENERGY_METHOD = ("NVML total energy counter of the board over each process's back-to-back phase (calls queued "
                 "without a gap, at least measurement.throughput_seconds, and energy_seconds in a row's first "
                 "process) / images run in it; the median over the processes")


def _median(values):
    values = [v for v in values if v is not None]
    return float(np.median(values)) if values else None


def rates(batch_size: int, timing: stats.Timing, loaders: list[row_parts.LoaderStats]
          ) -> row_parts.ModelRates | row_parts.PipelineRates:
    """The row's rates. Dummy loader: `model_fps` is the back-to-back rate (Timing.throughput_fps; on the CPU,
    batch / median call time), the model alone. Real loaders: `model_fps` is batch / the median model time
    measured in the same run under the loader's load (CUDA events on the model's stream), and `end_to_end_fps`
    the median over the processes of images / wall time of the timed phase, with the decode capacity and how
    close e2e came to what the pipeline allows: min(model FPS, capacity) where the producer runs beside the
    model (workers, decode threads), 1 / (1/model + 1/capacity) where the measuring process decodes itself."""
    latency_fps = batch_size / (timing.median / 1e3)
    if not loaders:
        return row_parts.ModelRates(model_fps=timing.throughput_fps or latency_fps,
                                   basis="back_to_back" if timing.throughput_fps else "latency",
                                   latency_fps=latency_fps, end_to_end_fps=None)
    model_fps = latency_fps
    e2e = [entry.end_to_end_fps for entry in loaders]
    capacity = _median(entry.decode_capacity_fps for entry in loaders)
    end_to_end = _median(e2e)
    if not capacity:
        expected = model_fps
    elif loaders[0].concurrent:
        expected = min(model_fps, capacity)
    else:
        expected = 1 / (1 / model_fps + 1 / capacity)
    waits = [entry.data_wait_ms for entry in loaders if entry.data_wait_ms]
    return row_parts.PipelineRates(
        model_fps=model_fps, basis="under_load", latency_fps=None, end_to_end_fps=end_to_end,
        end_to_end_spread=stats.spread_of(e2e) if end_to_end else 0.0, decode_capacity_fps=capacity,
        capacity_spread=stats.spread_of([entry.decode_capacity_fps for entry in loaders
                                         if entry.decode_capacity_fps]) if capacity else None,
        expected_fps=expected, pipeline_efficiency=end_to_end / expected if expected else None,
        stalled=bool(expected and end_to_end < results.PIPELINE_EFFICIENCY * expected),
        above_model_fps=bool(end_to_end > model_fps),
        above_capacity=bool(capacity and end_to_end > capacity * (1 + results.CAPACITY_MARGIN)),
        data_wait_ms=row_parts.MsSummary(**{key: _median(getattr(w, key) for w in waits)
                                           for key in ("median", "mean", "p90", "max")}) if waits else None,
        producer=loaders[0].producer, distinct_images_per_batch=loaders[0].distinct_images_per_batch)


def memory_summary(figures: list[row_parts.MemoryReading], positions: list[int] | None = None
                   ) -> row_parts.MemorySummary:
    """A row's memory is what its configuration needs in a process that ran nothing before it: the median over the
    processes where it went first; where none did, the median over its processes, which can depend on what ran
    before it (torch.compile fp16 224² batch 32 read 128 MB first in its process and 222 MB after batch 64, in both
    runs on the H200 on 2026-12-06: the earlier batch size's CUDA-graph pool was still held).
    The reading shown is that of the chosen processes with the median growth, with every process's figures beside
    it; whether the processes agree is recorded. Processes in which the configuration reused state an earlier one
    made on purpose (`shared`: a recorded CUDA graph kept) are left out where another process has its own figure.
    `positions`: where the configuration stood in each process (1: first)."""
    positions = positions or [1] * len(figures)
    own = [(r, pos) for r, pos in zip(figures, positions) if not r.shared] or list(zip(figures, positions))
    first = [r for r, pos in own if pos == 1]
    chosen_from = "first" if first else "median"
    pool = first or [r for r, _ in own]
    chosen = asdict(sorted(pool, key=lambda r: r.allocated_mb)[(len(pool) - 1) // 2])
    steady = [r.steady_mb for r in pool if r.steady_mb is not None]
    every = [r.steady_mb for r, _ in own if r.steady_mb is not None]
    if steady:
        share, megabytes = row_parts.MEMORY_AGREE
        chosen["steady_mb"] = float(np.median(steady))
        chosen["first_call_peak_mb"] = _median(r.first_call_peak_mb for r in pool)
        chosen["steady_mb_processes"] = [r.steady_mb for r in figures]
        chosen["steady_disagree"] = bool(max(every) - min(every) > max(share * np.median(every), megabytes))
        chosen["chosen_from"] = chosen_from
    return row_parts.MemorySummary(**chosen, allocated_mb_processes=[r.allocated_mb for r in figures])


def gpu_summary(values: list[Reading], batch_size: int) -> row_parts.GpuSummary | None:
    """Energy per image over the back-to-back phase (median over the processes that read it) and the clocks,
    power and clock event reasons seen."""
    present = [v.gpu for v in values if v.gpu]
    if not present:
        return None
    per_image, phase_seconds = [], []
    for value in values:
        energy, throughput = value.gpu.energy if value.gpu else None, value.timing.throughput
        if energy is not None and energy.joules is not None and throughput is not None:
            images = throughput.blocks * throughput.calls_per_block * batch_size
            per_image.append(energy.joules / images)
            phase_seconds.append(energy.seconds)
    clocks = [c for r in present if r.sm_clock_mhz for c in (r.sm_clock_mhz.min, r.sm_clock_mhz.median,
                                                              r.sm_clock_mhz.max) if c is not None]
    return row_parts.GpuSummary(
        energy_j_per_image=_median(per_image), energy_method=ENERGY_METHOD,
        energy_phase_seconds=max(phase_seconds) if phase_seconds else None,
        sm_clock_mhz=row_parts.ClockRange(min=min(clocks), max=max(clocks)) if clocks else None,
        power_w_max=max((r.power_w.max if r.power_w else None) or 0 for r in present) or None,
        power_limit_w=present[0].power_limit_w, clock_event_reasons=sorted({x for r in present
                                                                            for x in r.clock_event_reasons}),
        throttled=any(r.throttled for r in present))


def row(request: Request, loader: str, batch: int, gathered: Gathered, backend: dict, environment: dict,
        artifact: results.ExportRecord | None) -> results.Row:
    """The row of one configuration: measured, or why not."""
    config = request.config(loader, batch)
    if gathered.failure is not None or not gathered.readings:
        status, reason, transient = gathered.failure or ("failed", "not measured", False)
        return results.failure(config, status, reason, environment=environment, artifact=artifact, backend=backend,
                               transient=transient)
    values, settings = gathered.readings, request.measurement
    timing = stats.Timing.of([v.timing for v in values], values[0].clock, settings.noisy_iqr_ratio,
                             settings.unstable_spread, settings.host_bound_share)
    if gathered.accuracy_error:
        backend = {**backend, "accuracy_error": gathered.accuracy_error}
    return results.Row(
        schema_version=results.SCHEMA_VERSION, config=config, status="ok", reason=None, transient=False, attempt=1,
        timing=timing, throughput=rates(batch, timing, [v.loader for v in values if v.loader]),
        memory=memory_summary([entry.memory for entry in gathered.entries],
                              [entry.position for entry in gathered.entries]), gpu=gpu_summary(values, batch),
        accuracy=gathered.accuracy, environment=environment, artifact=artifact, backend=backend,
        processes=gathered.entries, measurement=request.measurement,
        contention=_contention([v.contention for v in values]))


def _contention(records: list[dict | None]) -> row_parts.ContentionSummary | None:
    summary = contention.row_summary(records)
    return row_parts.ContentionSummary(**summary) if summary else None


def rows(prepared: Prepared, measured: Measured, artifact: results.ExportRecord | None) -> list[results.Row]:
    """Every configuration's row: measured, failed, or — where nothing could be measured — the outcome that said
    why, for each."""
    request = prepared.request
    if measured.failure is not None:
        outcome = measured.failure
        return [results.failure(request.config(loader, batch), outcome.status, outcome.reason,
                                environment=prepared.environment, transient=outcome.transient, artifact=artifact)
                for loader, batch in request.configurations]
    backend = {**prepared.backend, **measured.info, "options": request.options}
    return [row(request, loader, batch, measured.gathered[(loader, batch)], backend,
                measured.environment or prepared.environment, artifact)
            for loader, batch in request.configurations]
