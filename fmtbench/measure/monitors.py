"""The harness's monitors: what the job process reads about a measuring process while it measures, outside it.

One interface (`Monitor.on_mark`): the job process answers each mark of its child (isolation.run_forked), and a
monitor's reply reaches the child (who passes the readings on in its `Reading`). Each monitor can be switched
off (config `measurement.harness`), so what it costs is a configuration:

- `DeviceMonitor` (CUDA): device memory in use every ms through NVML (`device_memory_sampling`; off: read at the
  marks only), the SM clock, power and clock event reasons during timing, the board's energy over the
  back-to-back phase;
- `ContentionMonitor`: what else used the machine while a configuration was measured (contention.Watch) — its
  cores, the rest of the machine, its GPU (`contention_watch`).
"""
from __future__ import annotations

import threading
import time
from typing import Protocol

from fmtbench import row_parts
from fmtbench.measure import contention
from fmtbench.measure.memory import FIRST_CALL_PEAK, MB, STEADY, add_load, growth_record
from fmtbench.measure.messages import Mark
from fmtbench.settings import Harness
from fmtbench.workflow import gpus


class Monitor(Protocol):
    def on_mark(self, mark: str, data: dict) -> dict:
        """The child reached `mark`; the reply goes back to it."""

    def reset(self) -> None:
        """The child ended (or died): stop whatever runs for it."""


class Monitors:
    """Several monitors as one: each mark goes to each, their replies merged."""

    def __init__(self, monitors: list[Monitor]):
        self.monitors = list(monitors)

    def on_mark(self, mark: str, data: dict) -> dict:
        reply: dict = {}
        for monitor in self.monitors:
            reply.update(monitor.on_mark(mark, data) or {})
        return reply

    def reset(self) -> None:
        for monitor in self.monitors:
            monitor.reset()


def for_device(device: str, harness: Harness) -> Monitors:
    """The monitors a measuring process of `device` runs under, as the harness switches say."""
    monitors: list[Monitor] = []
    if device == "cuda":
        monitors.append(DeviceMonitor(sampling=harness.device_memory_sampling))
    if harness.contention_watch:
        monitors.append(ContentionMonitor(device))
    return Monitors(monitors)


def _spread(values) -> row_parts.Spread | None:
    values = sorted(v for v in values if v is not None)
    if not values:
        return None
    return row_parts.Spread(min=values[0], median=values[len(values) // 2], max=values[-1])


class DeviceMonitor:
    """The job process's NVML readings while a child measures.

    From the child's `baseline` mark to its `closed` mark, device memory in use every 1 ms (`sampling`; else at
    the marks only). `loaded`: the model's load (memory in use then, against the baseline). Per configuration:
    `config_start` takes the configuration's own baseline and restarts the peak; `first_run` reads memory then;
    from `timing_start` the SM clock, power and clock event reasons are sampled every 10 ms; the board's energy
    counter is read at `energy_start` and `energy_end` (the back-to-back phase); `config_end` replies with the
    configuration's memory reading (its growth over its baseline plus the model's load) and GPU readings. Replies
    to `baseline` tell the child whether device memory is being tracked here."""

    def __init__(self, interval: float = gpus.MEMORY_PERIOD_MS / 1000,
                 clock_every: int = gpus.CLOCK_SAMPLE_MS // gpus.MEMORY_PERIOD_MS, sampling: bool = True):
        self._interval, self._clock_every, self.sampling = interval, clock_every, sampling
        self._nvml: gpus.Nvml | None = None
        self._thread = None
        self._active = False
        self._lock = threading.Lock()

    def _run(self):
        tick = 0
        while not self._stop.wait(self._interval):
            self._read()
            tick += 1
            if self._timing and tick % self._clock_every == 0:
                self._samples.append(self._nvml.sample())

    def _read(self) -> int:
        used = self._nvml.memory_used()
        with self._lock:  # the sampling thread and a mark's restart of the peak never interleave
            self._peak = max(self._peak, used)
        return used

    def _restart_peak(self) -> int:
        """The peak so far; the peak starts again from memory in use now."""
        used = self._nvml.memory_used()
        with self._lock:
            peak, self._peak = max(self._peak, used), used
        return peak

    def reset(self) -> None:
        """After a child that ended (or died): stop sampling."""
        self._active = False
        if self._thread is not None:
            self._stop.set()
            self._thread.join()
            self._thread = None

    def _start_config(self) -> None:
        used = self._nvml.memory_used()
        with self._lock:
            self._config_baseline = self._peak = used
        self._stages, self._samples, self._timing, self._energy = {}, [], False, None

    def _end_config(self) -> dict:
        self._read()
        self._timing = False
        if FIRST_CALL_PEAK in self._stages:
            self._stages[STEADY] = self._peak  # the peak since timing started (growth_record takes the overall one)
        if not self.sampling:
            self._samples.append(self._nvml.sample())
        reasons = 0
        for sample in self._samples:
            reasons |= sample["reasons"] or 0
        throttled = [label for bit, label in gpus.THROTTLE_REASONS.items() if reasons & bit]
        gpu = row_parts.GpuReading(
            energy=self._energy, sm_clock_mhz=_spread(s["sm_clock_mhz"] for s in self._samples),
            power_w=_spread(s["power_w"] for s in self._samples), power_limit_w=self._nvml.power_limit_w(),
            samples=len(self._samples),
            clock_event_reasons=throttled + [label for bit, label in gpus.OTHER_REASONS.items() if reasons & bit],
            throttled=bool(throttled))
        method = gpus.MEMORY_METHOD if self.sampling else gpus.MEMORY_METHOD_AT_MARKS
        record = growth_record(method, self._config_baseline, self._peak, self._stages)
        return {"memory": row_parts.MemoryReading(**add_load(record, self._load / MB)), "gpu": gpu}

    def on_mark(self, name: str, data: dict) -> dict:
        if name == Mark.BASELINE:
            self.reset()
            self._nvml = self._nvml or gpus.Nvml.open(data.get("uuid"), data.get("pci_bus_id"))
            if self._nvml is None:
                return {"device_memory": False}
            self.baseline = self._nvml.memory_used()
            self._load = 0
            self._start_config()
            self._active = True
            if self.sampling:
                self._stop = threading.Event()
                self._thread = threading.Thread(target=self._run, daemon=True)
                self._thread.start()
            return {"device_memory": True}
        if not self._active:
            return {}
        if name == Mark.LOADED:
            self._load = max(self._nvml.memory_used() - self.baseline, 0)
        elif name == Mark.CONFIG_START:
            self._start_config()
        elif name == Mark.FIRST_RUN:
            self._stages["first_run"] = self._read()
        elif name == Mark.TIMING_START:
            # the first call's and the warm-up's peak (autotuning, graph capture) kept apart: the steady-state
            # peak starts from what is in use now
            self._stages[FIRST_CALL_PEAK] = self._restart_peak()
            self._timing = True
            self._samples.append(self._nvml.sample())
        elif name == Mark.ENERGY_START:
            self._read()
            self._energy_start = (self._nvml.energy_mj(), time.perf_counter())
        elif name == Mark.ENERGY_END:
            self._read()
            energy, started = self._nvml.energy_mj(), self._energy_start[1]
            joules = (energy - self._energy_start[0]) / 1000 if None not in (energy, self._energy_start[0]) else None
            self._energy = row_parts.Energy(joules=joules, seconds=time.perf_counter() - started)
        elif name == Mark.CONFIG_END:
            return self._end_config()
        elif name == Mark.CLOSED:
            self.reset()
        return {}


class ContentionMonitor:
    """What else used the machine while a configuration was measured: a `contention.Watch` over the measuring
    process (its cores: its affinity) from `config_start` (its first call, warm-up and timed phases: long enough
    for the kernel's clock ticks to tell) to `config_end`, whose record is the reply to `config_end`."""

    def __init__(self, device: str):
        self.device = device
        self._pid: int | None = None
        self._watch: contention.Watch | None = None

    def on_mark(self, name: str, data: dict) -> dict:
        if name == Mark.STARTED:
            self._pid = data.get("pid")
        elif name == Mark.CONFIG_START and self._pid:
            self._watch = contention.Watch(self.device, None, self._pid).start()
        elif name == Mark.CONFIG_END and self._watch is not None:
            watch, self._watch = self._watch, None
            return {"contention": watch.stop()}
        return {}

    def reset(self) -> None:
        self._pid, self._watch = None, None
