"""Memory growth of one configuration over its baseline, by one method per device for every backend.

CPU rows: resident set size (RSS) of the measuring process. At the baseline the C heap's free pages are
returned to the kernel (malloc_trim: else a new allocation could reuse resident freed pages unseen) and the
kernel's high-water mark (VmHWM) is reset to the current RSS (/proc/self/clear_refs), so the peak covers
every allocation made by any library (torch, ONNX Runtime, ...), not only torch's allocator; a sampling
thread backs it up.
CUDA rows: device memory in use (cudaMemGetInfo: total - free), sampled from a background thread;
it sees every allocator in the process (torch's caching allocator, ONNX Runtime's arena, cuDNN/cuBLAS
workspaces, TensorRT engines). Growth = peak - baseline, never negative by construction.
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
    """Returns the C heap's free pages to the kernel (glibc malloc_trim); False where there is no glibc.

    Without it an allocation can be served from pages that an earlier, freed allocation left resident,
    and RSS growth would not see it."""
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


class _Sampler:
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


class RssTracker:
    method = "process RSS growth (free C heap trimmed and VmHWM reset at baseline; peak VmHWM and 5 ms sampling)"

    def __init__(self, interval: float = 0.005):
        self._interval = interval

    def start(self) -> "RssTracker":
        release_free_heap()
        self._hwm_reset = reset_peak_rss()
        self.baseline = current_rss_bytes()
        self._sampler = _Sampler(current_rss_bytes, self._interval).start()
        return self

    def stop(self) -> dict:
        peak = self._sampler.stop()
        if self._hwm_reset:
            peak = max(peak, (_status_kib("VmHWM") or 0) * 1024)
        return growth_record(self.method, self.baseline, peak)


class CudaTracker:
    method = "CUDA device memory in use growth (cudaMemGetInfo total-free, 1 ms sampling)"

    def __init__(self, interval: float = 0.001):
        self._interval = interval

    @staticmethod
    def _used() -> int:
        import torch
        free, total = torch.cuda.mem_get_info()
        return total - free

    def start(self) -> "CudaTracker":
        import torch
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        self.baseline = self._used()
        self._sampler = _Sampler(self._used, self._interval).start()
        return self

    def stop(self) -> dict:
        import torch
        torch.cuda.synchronize()
        record = growth_record(self.method, self.baseline, self._sampler.stop())
        record["torch_max_allocated_mb"] = torch.cuda.max_memory_allocated() / MB
        record["torch_max_reserved_mb"] = torch.cuda.max_memory_reserved() / MB
        return record


def growth_record(method: str, baseline: int, peak: int) -> dict:
    peak = max(peak, baseline)
    return {"method": method, "baseline_mb": baseline / MB, "peak_mb": peak / MB,
            "allocated_mb": (peak - baseline) / MB}


def tracker_for(device: str):
    return CudaTracker() if device == "cuda" else RssTracker()

