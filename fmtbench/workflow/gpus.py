"""The GPU side of the job process: which GPU a job uses, and NVML's view of it (the job's device monitor,
measure.monitors, reads it while a child measures).

One GPU per job: Snakemake counts GPUs (`--resources gpu=N`) but assigns no ids, so a CUDA job claims
a free one itself, with an exclusive lock per GPU, and pins itself to it with CUDA_VISIBLE_DEVICES
(CUDA_DEVICE_ORDER=PCI_BUS_ID, so the ids are nvidia-smi's).

The lock files carry the host name (a shared filesystem across cluster nodes must not make two nodes'
GPU 0 one lock). Where the scheduler already handed out devices (CUDA_VISIBLE_DEVICES set, as SLURM
does), the job claims among those.
"""
from __future__ import annotations

import fcntl
import os
import socket
import time
from contextlib import contextmanager, nullcontext
from pathlib import Path

from fmtbench import paths
from fmtbench.workflow import hardware

LOCK_DIR = Path(paths.GPU_LOCKS)


def candidates() -> list[str]:
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible not in (None, ""):
        return [item.strip() for item in visible.split(",") if item.strip() and item.strip() != "-1"]
    return [str(index) for index in range(hardware.gpu_count())]


@contextmanager
def claim(lock_dir: Path = LOCK_DIR, poll_seconds: float = 0.5, timeout_seconds: float = 24 * 3600):
    """Yields the claimed device id (or None without GPUs) with CUDA_VISIBLE_DEVICES pinned to it."""
    devices = candidates()
    if not devices:
        yield None
        return
    lock_dir.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + timeout_seconds
    previous = os.environ.get("CUDA_VISIBLE_DEVICES")
    while True:
        for device in devices:
            handle = open(lock_dir / f"{socket.gethostname()}-gpu{device}.lock", "w")
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                handle.close()
                continue
            os.environ["CUDA_VISIBLE_DEVICES"] = device
            os.environ.setdefault("CUDA_DEVICE_ORDER", "PCI_BUS_ID")
            try:
                yield device
            finally:
                if previous is None:
                    os.environ.pop("CUDA_VISIBLE_DEVICES", None)
                else:
                    os.environ["CUDA_VISIBLE_DEVICES"] = previous
                fcntl.flock(handle, fcntl.LOCK_UN)
                handle.close()
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"no free GPU among {devices} after {timeout_seconds:.0f} s")
        time.sleep(poll_seconds)


def claim_for(device: str):
    """A GPU of this host for a CUDA job alone (benchmarks time on it, compilers autotune on it)."""
    return claim() if device == "cuda" else nullcontext()


# --- the NVML view of a GPU, from the job process (NVML needs no CUDA context) ----------------------------

# Clock event ("throttle") reasons that mean the GPU ran below the clocks it would otherwise have chosen.
THROTTLE_REASONS = {0x4: "sw_power_cap", 0x8: "hw_slowdown", 0x20: "sw_thermal", 0x40: "hw_thermal",
                    0x80: "hw_power_brake"}
OTHER_REASONS = {0x1: "gpu_idle", 0x2: "applications_clocks", 0x10: "sync_boost", 0x100: "display_clock"}
MEMORY_PERIOD_MS = 1    # device memory sampled this often while a child measures
CLOCK_SAMPLE_MS = 10   # SM clock, power and clock event reasons this often during timing
MEMORY_METHOD = ("CUDA device memory in use growth (NVML total - free, sampled every 1 ms by the job process, "
                 "outside the measured one)")
MEMORY_METHOD_AT_MARKS = ("CUDA device memory in use growth (NVML total - free, read by the job process at each stage "
                          "of the configuration, no sampling)")


class Nvml:
    """One GPU through NVML, found by the UUID or PCI address the measuring child reports."""

    def __init__(self, pynvml, handle):
        self._nvml, self._handle = pynvml, handle
        reasons = getattr(pynvml, "nvmlDeviceGetCurrentClocksEventReasons", None)
        self._reasons = reasons or pynvml.nvmlDeviceGetCurrentClocksThrottleReasons

    @classmethod
    def open(cls, uuid: str | None = None, pci_bus_id: str | None = None, index: int | None = None) -> Nvml | None:
        try:
            import pynvml
            pynvml.nvmlInit()
        except Exception:  # noqa: BLE001 - no NVML library or no permission: callers fall back
            return None
        finders = []
        if uuid:
            finders.append(lambda: pynvml.nvmlDeviceGetHandleByUUID(uuid if uuid.startswith(("GPU-", "MIG-"))
                                                                     else f"GPU-{uuid}"))
        if pci_bus_id:
            finders.append(lambda: pynvml.nvmlDeviceGetHandleByPciBusId(pci_bus_id))
        if index is not None:
            finders.append(lambda: pynvml.nvmlDeviceGetHandleByIndex(index))
        finders.append(lambda: pynvml.nvmlDeviceGetHandleByIndex(0) if pynvml.nvmlDeviceGetCount() == 1 else None)
        for find in finders:
            try:
                handle = find()
            except Exception:  # noqa: BLE001 - try the next way
                continue
            if handle is not None:
                return cls(pynvml, handle)
        return None

    def memory_used(self) -> int:
        info = self._nvml.nvmlDeviceGetMemoryInfo(self._handle)
        return int(info.total - info.free)

    def memory_free(self) -> int:
        return int(self._nvml.nvmlDeviceGetMemoryInfo(self._handle).free)

    def _optional(self, function, *args):
        try:
            return getattr(self._nvml, function)(self._handle, *args)
        except Exception:  # noqa: BLE001 - not supported on this GPU or driver
            return None

    def energy_mj(self) -> int | None:
        return self._optional("nvmlDeviceGetTotalEnergyConsumption")

    def sample(self) -> dict:
        """SM clock (MHz), power (W) and clock event reasons now."""
        power = self._optional("nvmlDeviceGetPowerUsage")
        return {"sm_clock_mhz": self._optional("nvmlDeviceGetClockInfo", self._nvml.NVML_CLOCK_SM),
                "power_w": power / 1000 if power is not None else None,
                "reasons": self._reasons(self._handle) if self._reasons else 0}

    def power_limit_w(self) -> float | None:
        limit = self._optional("nvmlDeviceGetEnforcedPowerLimit")
        return limit / 1000 if limit is not None else None
