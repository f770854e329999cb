"""Clocks: how one call, or a phase of calls, is timed on each device (the scenarios in measure.scenarios use them).

- `CpuClock` / `CudaClock`: one call between two readings of perf_counter, on CUDA after a device-wide
  synchronisation on both sides (a library's own stream is included).
- `StreamEvents` / `PerfCounterCalls`: per-call times of calls run back to back, without waiting between them
  (CUDA events on the model's stream, read after the phase; on the CPU perf_counter around each call).
"""
from __future__ import annotations

import time
from collections.abc import Callable


class CpuClock:
    name = "time.perf_counter around the call"
    synchronous = True  # a call is done when it returns: back to back is the latency loop itself

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
    synchronous = False

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


# A device-time sample whose launches the spin did not hide is taken again behind a spin twice as long, this often
# at most (a host slowed down for a moment, e.g. by work on the same physical cores, would otherwise put its gaps in
# the GPU's time: +34 % in one process of eager torch fp16 on an H100, 2026-12-07).
SPIN_DOUBLINGS = 3


class GpuTime:
    """Device time of one call with its launches hidden: a spin kernel (`torch.cuda._sleep`) queued first keeps
    the GPU busy while the host queues the call's kernels, so the CUDA events around the call (recorded after the
    spin) measure the kernels back to back, without the gaps in which the GPU waited for the host. Set beside
    the synchronised call time, it says how much of a call the GPU is busy: a call the host cannot launch as fast
    as the GPU runs it is host-bound (its figure is the host's launch rate).

    Each sample checks that the spin was still running when the host had queued the whole call (the event after
    the spin not yet reached); where it was not, the sample is taken again behind a spin twice as long, up to
    SPIN_DOUBLINGS times. `retaken` counts those repeats, `unhidden` the samples no spin hid (kept: an upper bound).

    Only for work on the calling thread's current stream (a library on a stream of its own is not behind the
    spin)."""
    name = ("CUDA events around the call, behind a spin kernel long enough for the host to queue the whole call "
            "(checked per sample: the spin still running when the call was queued, else taken again behind a "
            "longer one)")

    def __init__(self):
        import torch
        self._torch = torch
        torch.cuda.synchronize()
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        torch.cuda._sleep(1_000_000)
        end.record()
        end.synchronize()
        self._cycles_per_ms = 1_000_000 / max(start.elapsed_time(end), 1e-3)
        self.retaken = 0
        self.unhidden = 0

    def time(self, fn: Callable[[], object], host_ms: float) -> float:
        """ms of device time of `fn()`; `host_ms`: about how long the host takes to issue it (the spin lasts
        twice that, at least 1 ms, and twice as long again for each retake)."""
        torch = self._torch
        spin_ms = max(2 * host_ms, 1.0)
        for attempt in range(SPIN_DOUBLINGS + 1):
            torch.cuda.synchronize()
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            torch.cuda._sleep(int(self._cycles_per_ms * spin_ms))
            start.record()
            fn()
            hidden = not start.query()  # the GPU had not reached the call when the host had queued all of it
            end.record()
            end.synchronize()
            if hidden:
                return start.elapsed_time(end)
            if attempt < SPIN_DOUBLINGS:
                self.retaken += 1
                spin_ms *= 2
        self.unhidden += 1
        return start.elapsed_time(end)
