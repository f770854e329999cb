"""The GPU side of the job process: which GPU a job uses, and what NVML says about it while a child measures.

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

from fmtbench import hardware, paths

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


class Nvml:
    """One GPU through NVML, found by the UUID or PCI address the measuring child reports."""

    def __init__(self, pynvml, handle):
        self._nvml, self._handle = pynvml, handle
        reasons = getattr(pynvml, "nvmlDeviceGetCurrentClocksEventReasons", None)
        self._reasons = reasons or pynvml.nvmlDeviceGetCurrentClocksThrottleReasons

    @classmethod
    def open(cls, uuid: str | None = None, pci_bus_id: str | None = None) -> Nvml | None:
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


def _spread(values) -> dict | None:
    values = sorted(v for v in values if v is not None)
    if not values:
        return None
    return {"min": values[0], "median": values[len(values) // 2], "max": values[-1]}


class DeviceMonitor:
    """The job process's readings while a child measures (the `on_mark` of isolation.run_forked).

    From the child's `baseline` mark to its `closed` mark, device memory in use every 1 ms. `loaded`: the
    model's load (memory in use then, against the baseline). Per configuration: `config_start` takes the
    configuration's own baseline and restarts the peak; `first_run` reads memory then; from `timing_start`
    the SM clock, power and clock event reasons are sampled every 10 ms; the board's energy counter is read at
    `energy_start` and `energy_end` (the back-to-back phase); `config_end` replies with the configuration's
    memory record (its growth over its baseline plus the model's load) and GPU readings. Replies to
    `baseline` tell the child whether device memory is being tracked here."""

    def __init__(self, interval: float = MEMORY_PERIOD_MS / 1000,
                 clock_every: int = CLOCK_SAMPLE_MS // MEMORY_PERIOD_MS):
        self._interval, self._clock_every = interval, clock_every
        self._nvml: Nvml | None = None
        self._thread = None

    def _run(self):
        tick = 0
        while not self._stop.wait(self._interval):
            self._peak = max(self._peak, self._nvml.memory_used())
            tick += 1
            if self._timing and tick % self._clock_every == 0:
                self._samples.append(self._nvml.sample())

    def reset(self) -> None:
        """After a child that ended (or died): stop sampling."""
        if self._thread is not None:
            self._stop.set()
            self._thread.join()
            self._thread = None

    def _start_config(self) -> None:
        used = self._nvml.memory_used()
        self._config_baseline = self._peak = used
        self._stages, self._samples, self._timing, self._energy = {}, [], False, None

    def _end_config(self) -> dict:
        from fmtbench.memory import MB, add_load, growth_record
        self._peak = max(self._peak, self._nvml.memory_used())
        self._timing = False
        reasons = 0
        for sample in self._samples:
            reasons |= sample["reasons"] or 0
        throttled = [label for bit, label in THROTTLE_REASONS.items() if reasons & bit]
        gpu = {"energy": self._energy,
               "sm_clock_mhz": _spread(s["sm_clock_mhz"] for s in self._samples),
               "power_w": _spread(s["power_w"] for s in self._samples),
               "power_limit_w": self._nvml.power_limit_w(), "samples": len(self._samples),
               "clock_event_reasons": throttled + [label for bit, label in OTHER_REASONS.items() if reasons & bit],
               "throttled": bool(throttled)}
        record = growth_record(MEMORY_METHOD, self._config_baseline, self._peak, self._stages)
        return {"memory": add_load(record, self._load / MB), "gpu": gpu}

    def on_mark(self, name: str, data: dict) -> dict:
        import threading
        if name == "baseline":
            self.reset()
            self._nvml = self._nvml or Nvml.open(data.get("uuid"), data.get("pci_bus_id"))
            if self._nvml is None:
                return {"device_memory": False}
            self.baseline = self._nvml.memory_used()
            self._load = 0
            self._start_config()
            self._stop = threading.Event()
            self._thread = threading.Thread(target=self._run, daemon=True)
            self._thread.start()
            return {"device_memory": True}
        if self._thread is None:
            return {}
        if name == "loaded":
            self._load = max(self._nvml.memory_used() - self.baseline, 0)
        elif name == "config_start":
            self._start_config()
        elif name == "first_run":
            used = self._nvml.memory_used()
            self._stages["first_run"] = used
            self._peak = max(self._peak, used)
        elif name == "timing_start":
            self._timing = True
            self._samples.append(self._nvml.sample())
        elif name == "energy_start":
            self._energy_start = (self._nvml.energy_mj(), time.perf_counter())
        elif name == "energy_end":
            energy, started = self._nvml.energy_mj(), self._energy_start[1]
            joules = (energy - self._energy_start[0]) / 1000 if None not in (energy, self._energy_start[0]) else None
            self._energy = {"joules": joules, "seconds": time.perf_counter() - started}
        elif name == "config_end":
            return self._end_config()
        elif name == "closed":
            self.reset()
        return {}
