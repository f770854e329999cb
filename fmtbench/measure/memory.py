"""Memory growth of one configuration, by one method per device for every backend.

A measuring process loads the model once and measures several configurations with it (as a server would).
The process baseline is taken after imports, device initialisation (the CUDA context and the cuDNN/cuBLAS
handles, made by a tiny convolution and matmul) right before the model is loaded; the model's load is the
growth from there to after loading (weights, engines, sessions). Each configuration then starts from its own
baseline, taken after the previous configuration released what it held (its buffers, CUDA graphs, allocator
caches, ONNX Runtime's arena: `Session.release`) and after its input batch was made (in the format's final
dtype and layout). Its figure is the model's load plus its own peak growth over that baseline (`add_load`):
what a fresh process measures for it. Readings: after the first run at its shape (workspaces, autotuning
buffers); the peak through the first call and the warm-up (`first_call_peak`: autotuning, graph capture); and
the peak over the timed phases (`steady`: what the running model needs, the figure a table shows), which does
not depend on whether an earlier configuration of the process had already tuned the shape: on CUDA rows torch's
allocator gives what the first call left unused in its cache (cuDNN's autotuning workspaces) back to the driver
before the warm-up (settings.Harness.release_first_call_cache), and the warm-up grows it again to what the calls
need.

CPU rows: resident set size (RSS) of the measuring process. At the baseline the C heap's free pages are
returned to the kernel (malloc_trim: else a new allocation could reuse resident freed pages unseen) and the
kernel's high-water mark (VmHWM) is reset to the current RSS (/proc/self/clear_refs), so the peak covers
every allocation of every library without a sampling thread in the measured process. DataLoader workers are
processes of their own and are not counted.
CUDA rows: device memory in use (total - free), which sees every allocator in the process (torch's caching
allocator, ONNX Runtime's arena, cuDNN/cuBLAS workspaces, TensorRT engines). It is sampled every ms by the
job process through NVML (measure.monitors.DeviceMonitor), so no thread competes with the measured one; without NVML,
by a thread in the measuring process through cudaMemGetInfo (CudaTracker). Growth is never negative.
"""
from __future__ import annotations

import ctypes
import threading

MB = 1024 * 1024
# A configuration's two figures: the peak from its baseline through its first call and warm-up (autotuning,
# graph capture: the first call's price), and the peak over its timed phases (what the running model needs).
FIRST_CALL_PEAK = "first_call_peak"
STEADY = "steady"


def _status_kib(field: str) -> int | None:
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def current_rss_bytes() -> int:
    kib = _status_kib("VmRSS")
    if kib is not None:
        return kib * 1024
    import psutil
    return psutil.Process().memory_info().rss


def release_free_heap() -> bool:
    """Returns the C heap's free pages to the kernel (glibc malloc_trim); False where there is no glibc."""
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.malloc_trim(0)
        return True
    except (OSError, AttributeError):
        return False


# glibc's mallopt parameters (malloc.h), and "never" for the two thresholds (the largest value mallopt takes).
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
_NEVER = 2**31 - 1
_keeping = False


def keep_freed_memory() -> bool:
    """Makes the C heap keep what a call frees for the next call, as jemalloc and tcmalloc do (the allocators
    PyTorch's CPU performance guide recommends): glibc otherwise maps every block above its mmap threshold (128 KiB
    to 32 MiB, adapting to what was freed) anew and unmaps it when freed, so each call of a CPU model faults and
    zeroes its activations again, its threads queueing on the process's one memory-map lock (ResNet-18 at batch
    16, 224²: ~56,000 page faults a call, 18 % of its time on a 2-core machine). Blocks then come from the heap,
    which is not trimmed but at a memory baseline (`release_free_heap`). Inherited by forked processes (DataLoader
    workers). False where there is no glibc."""
    global _keeping
    try:
        libc = ctypes.CDLL("libc.so.6")
        _keeping = bool(libc.mallopt(_M_MMAP_THRESHOLD, _NEVER)) and bool(libc.mallopt(_M_TRIM_THRESHOLD, _NEVER))
    except (OSError, AttributeError):
        _keeping = False
    return _keeping


def keeps_freed_memory() -> bool:
    """Whether `keep_freed_memory` took effect in this process (or the process it was forked from)."""
    return _keeping


def reset_peak_rss() -> bool:
    """Sets VmHWM to the current RSS (Linux >= 4.0); False where that is not possible."""
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as clear_refs:
            clear_refs.write("5")
        return True
    except OSError:
        return False


class Sampler:
    """Calls `read()` every `interval` seconds in a daemon thread and keeps the maximum."""

    def __init__(self, read, interval: float):
        self._read, self._interval = read, interval
        self.peak = read()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.wait(self._interval):
            self.peak = max(self.peak, self._read())

    def start(self):
        self._thread.start()
        return self

    def stop(self) -> int:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._read())
        return self.peak


def growth_record(method: str, baseline: int, peak: int, stages: dict[str, int] | None = None) -> dict:
    """Peak growth over the baseline in MB, with the growth at each named stage (`load_mb`, ...)."""
    peak = max([peak, baseline, *(stages or {}).values()])
    record = {"method": method, "baseline_mb": baseline / MB, "peak_mb": peak / MB,
              "allocated_mb": (peak - baseline) / MB}
    for name, value in (stages or {}).items():
        record[f"{name}_mb"] = max(value - baseline, 0) / MB
    return record


class RssTracker:
    method = ("process RSS growth (free C heap trimmed and VmHWM reset at the baseline; peak = VmHWM, "
              "no sampling thread)")

    def start(self) -> RssTracker:
        release_free_heap()
        self._hwm_reset = reset_peak_rss()
        self.baseline = current_rss_bytes()
        self._stages: dict[str, int] = {}
        # Only where the kernel's high-water mark cannot be reset does a thread sample the RSS.
        self._sampler = None if self._hwm_reset else Sampler(current_rss_bytes, 0.005).start()
        return self

    def stage(self, name: str) -> None:
        self._stages[name] = current_rss_bytes()

    def _peak_so_far(self) -> int:
        if self._sampler:
            return max(self._sampler.peak, current_rss_bytes())
        return max(current_rss_bytes(), (_status_kib("VmHWM") or 0) * 1024)

    def restart_peak(self, name: str) -> None:
        """The peak up to now becomes stage `name`; the peak starts again from what is resident now."""
        self._stages[name] = self._peak_so_far()
        self._before_restart = self._stages[name]
        if self._sampler:
            self._sampler.peak = current_rss_bytes()
        else:
            reset_peak_rss()

    def steady_peak(self) -> int:
        """The peak since `restart_peak`."""
        return self._peak_so_far()

    def stop(self) -> dict:
        if FIRST_CALL_PEAK in self._stages:
            self._stages[STEADY] = self.steady_peak()
        if self._sampler:
            peak = max(self._sampler.stop(), getattr(self, "_before_restart", 0))
            method = self.method.replace("peak = VmHWM, no sampling thread", "5 ms sampling thread: VmHWM "
                                                                              "could not be reset")
        else:
            peak = max(current_rss_bytes(), (_status_kib("VmHWM") or 0) * 1024, getattr(self, "_before_restart", 0))
            method = self.method
        return growth_record(method, self.baseline, peak, self._stages)


class CudaTracker:
    """Fallback where NVML is missing: cudaMemGetInfo sampled by a thread of the measuring process."""
    method = "CUDA device memory in use growth (cudaMemGetInfo total - free, 1 ms sampling thread in the process)"

    @staticmethod
    def _used() -> int:
        import torch
        free, total = torch.cuda.mem_get_info()
        return total - free

    def start(self) -> CudaTracker:
        import torch
        torch.cuda.synchronize()
        self.baseline = self._used()
        self._stages: dict[str, int] = {}
        self._sampler = Sampler(self._used, 0.001).start()
        return self

    def stage(self, name: str) -> None:
        self._stages[name] = self._used()

    def restart_peak(self, name: str) -> None:
        self._stages[name] = max(self._sampler.peak, self._used())
        self._sampler.peak = self._used()

    def steady_peak(self) -> int:
        return max(self._sampler.peak, self._used())

    def stop(self) -> dict:
        import torch
        torch.cuda.synchronize()
        if FIRST_CALL_PEAK in self._stages:
            self._stages[STEADY] = self.steady_peak()
        peak = max(self._sampler.stop(), self._stages.get(FIRST_CALL_PEAK, 0))
        return growth_record(self.method, self.baseline, peak, self._stages)


class ProcessAccounting:
    """The measuring process's own memory readings where its job process has no NVML view (CPU rows; CUDA without
    NVML): the model's load once, then each configuration's growth over its own baseline."""

    def __init__(self, device: str):
        self._tracker_type = RssTracker if device == "cpu" else CudaTracker
        self._process = self._tracker_type().start()
        self.load_mb = 0.0
        self.current = None

    def loaded(self) -> None:
        self._process.stage("load")
        self.load_mb = self._process.stop()["load_mb"]

    def start_config(self) -> None:
        self.current = self._tracker_type().start()

    def stage(self, name: str) -> None:
        self.current.stage(name)

    def timing_starts(self) -> None:
        """What the first call and the warm-up peaked at is kept; the steady-state peak starts from here."""
        self.current.restart_peak(FIRST_CALL_PEAK)

    def end_config(self) -> dict:
        return add_load(self.current.stop(), self.load_mb)


def add_load(record: dict, load_mb: float) -> dict:
    """A configuration's growth over its own baseline, plus the model's load in the process: its figures."""
    record = dict(record)
    record["allocated_mb"] += load_mb
    for stage in ("first_run", FIRST_CALL_PEAK, STEADY):
        if f"{stage}_mb" in record:
            record[f"{stage}_mb"] += load_mb
    record["load_mb"] = load_mb
    return record


def torch_peaks() -> dict:
    """What torch's caching allocator itself saw (a subset of device memory in use), for comparison."""
    import torch
    return {"torch_max_allocated_mb": torch.cuda.max_memory_allocated() / MB,
            "torch_max_reserved_mb": torch.cuda.max_memory_reserved() / MB}
