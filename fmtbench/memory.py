"""Memory growth of one configuration, by one method per device for every backend.

A measuring process loads the model once and measures several configurations with it (as a server would).
The process baseline is taken after imports, device initialisation (the CUDA context and the cuDNN/cuBLAS
handles, made by a tiny convolution and matmul) right before the model is loaded; the model's load is the
growth from there to after loading (weights, engines, sessions). Each configuration then starts from its own
baseline, taken after the previous configuration released what it held (its buffers, CUDA graphs, allocator
caches, ONNX Runtime's arena: `Session.release`) and after its input batch was made (in the format's final
dtype and layout). Its figure is the model's load plus its own peak growth over that baseline (`add_load`):
what a fresh process measures for it. Readings: after the first run at its shape (workspaces, autotuning
buffers) and the peak up to the end of its timed phases.

CPU rows: resident set size (RSS) of the measuring process. At the baseline the C heap's free pages are
returned to the kernel (malloc_trim: else a new allocation could reuse resident freed pages unseen) and the
kernel's high-water mark (VmHWM) is reset to the current RSS (/proc/self/clear_refs), so the peak covers
every allocation of every library without a sampling thread in the measured process. DataLoader workers are
processes of their own and are not counted.
CUDA rows: device memory in use (total - free), which sees every allocator in the process (torch's caching
allocator, ONNX Runtime's arena, cuDNN/cuBLAS workspaces, TensorRT engines). It is sampled every ms by the
job process through NVML (gpus.DeviceMonitor), so no thread competes with the measured one; without NVML,
by a thread in the measuring process through cudaMemGetInfo (CudaTracker). Growth is never negative.
"""
from __future__ import annotations

import ctypes
import threading

MB = 1024 * 1024


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

    def stop(self) -> dict:
        if self._sampler:
            peak = self._sampler.stop()
            method = self.method.replace("peak = VmHWM, no sampling thread", "5 ms sampling thread: VmHWM "
                                                                              "could not be reset")
        else:
            peak = max(current_rss_bytes(), (_status_kib("VmHWM") or 0) * 1024)
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

    def stop(self) -> dict:
        import torch
        torch.cuda.synchronize()
        return growth_record(self.method, self.baseline, self._sampler.stop(), self._stages)


def add_load(record: dict, load_mb: float) -> dict:
    """A configuration's growth over its own baseline, plus the model's load in the process: its figure."""
    record = dict(record)
    record["allocated_mb"] += load_mb
    if "first_run_mb" in record:
        record["first_run_mb"] += load_mb
    record["load_mb"] = load_mb
    return record


def torch_peaks() -> dict:
    """What torch's caching allocator itself saw (a subset of device memory in use), for comparison."""
    import torch
    return {"torch_max_allocated_mb": torch.cuda.max_memory_allocated() / MB,
            "torch_max_reserved_mb": torch.cuda.max_memory_reserved() / MB}
