"""What the kernel and NVML say about the processes of this machine (for contention.Watch): per-CPU busy and steal
ticks, a process tree's CPU seconds, every other process's, threads' run-queue waits, and the processes on a GPU.
Light imports only (os, psutil; pynvml where asked)."""
from __future__ import annotations

import os

import psutil

TICK_S = 1 / os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 0.01
TOP_OTHERS = 3


# --- CPU counters ------------------------------------------------------------------------------------------

def proc_stat() -> dict[int, tuple[int, int, int]]:
    """Per logical CPU: (busy, steal, total) clock ticks since boot."""
    counters = {}
    try:
        with open("/proc/stat", encoding="ascii") as stat:
            for line in stat:
                if not line.startswith("cpu") or line.startswith("cpu "):
                    continue
                name, *fields = line.split()
                values = [int(v) for v in fields[:8]] + [0] * max(0, 8 - len(fields))
                user, nice, system, idle, iowait, irq, softirq, steal = values[:8]
                counters[int(name[3:])] = (user + nice + system + irq + softirq, steal,
                                           user + nice + system + idle + iowait + irq + softirq + steal)
    except OSError:
        pass
    return counters


def tree(pid: int, with_parent: bool = False) -> list[psutil.Process]:
    try:
        root = psutil.Process(pid)
        processes = [root, *root.children(recursive=True)]
        parent = root.parent() if with_parent else None
        return processes + ([parent] if parent is not None and parent.pid > 1 else [])
    except psutil.Error:
        return []


def cpu_seconds(process: psutil.Process, with_reaped: bool = True) -> float:
    """User + system seconds of the process (and of its children it has waited for)."""
    try:
        times = process.cpu_times()
    except psutil.Error:
        return 0.0
    own = times.user + times.system
    return own + (times.children_user + times.children_system if with_reaped else 0.0)


def own_seconds(processes: list[psutil.Process]) -> dict[int, float]:
    # A child reaped by a process of the tree is counted in that process's children_* times; one still running
    # is counted itself (never both: the kernel adds a child's times to its parent's when the parent waits).
    return {p.pid: cpu_seconds(p) for p in processes}


def others(exclude: set[int]) -> dict[int, tuple[str, float]]:
    """Every other process of the machine: (name, user + system seconds)."""
    snapshot = {}
    for process in psutil.process_iter(["name", "cpu_times"]):
        if process.pid in exclude:
            continue
        times = process.info.get("cpu_times")
        if times is not None:
            snapshot[process.pid] = (process.info.get("name") or "?", times.user + times.system)
    return snapshot


def busiest(before: dict, after: dict, seconds: float) -> list[dict]:
    used = []
    for pid, (name, cpu) in after.items():
        delta = cpu - before.get(pid, (name, 0.0))[1]
        if delta >= 2 * TICK_S:
            used.append({"pid": pid, "name": name, "cpu_s": round(delta, 3),
                         "cpu_share": round(delta / seconds, 3) if seconds > 0 else None})
    busiest = sorted(used, key=lambda entry: -entry["cpu_s"])[:TOP_OTHERS]
    for entry in busiest:  # the command line says more than "python"
        try:
            entry["command"] = " ".join(psutil.Process(entry["pid"]).cmdline())[:120] or None
        except psutil.Error:
            entry["command"] = None
    return busiest


def run_queue_wait_ns(pid: int) -> dict[int, int]:
    """Per thread of `pid`: nanoseconds spent runnable but waiting for a CPU (/proc/<pid>/task/*/schedstat)."""
    waits = {}
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return waits
    for tid in tasks:
        try:
            with open(f"/proc/{pid}/task/{tid}/schedstat", encoding="ascii") as stat:
                waits[int(tid)] = int(stat.read().split()[1])
        except (OSError, IndexError, ValueError):
            continue
    return waits


def loadavg() -> float | None:
    try:
        return round(os.getloadavg()[0], 2)
    except OSError:
        return None


# --- GPU ---------------------------------------------------------------------------------------------------

def nvml():
    try:
        import pynvml
        pynvml.nvmlInit()
        return pynvml
    except Exception:  # noqa: BLE001 - no NVML library, no driver, no permission
        return None


def gpu_pids(nvml, handle) -> dict[int, int | None]:
    """pid -> device memory used (bytes, None where NVML does not say) of every process on the GPU."""
    found = {}
    for name in ("nvmlDeviceGetComputeRunningProcesses", "nvmlDeviceGetGraphicsRunningProcesses"):
        try:
            for process in getattr(nvml, name)(handle):
                found[int(process.pid)] = getattr(process, "usedGpuMemory", None)
        except Exception:  # noqa: BLE001 - not supported on this GPU or driver
            continue
    return found


def our_gpu(nvml, ours: set[int]):
    """Our GPU: the one our processes are on, else the one CUDA_VISIBLE_DEVICES names, else the only one."""
    try:
        count = nvml.nvmlDeviceGetCount()
        handles = [nvml.nvmlDeviceGetHandleByIndex(index) for index in range(count)]
    except Exception:  # noqa: BLE001
        return None
    for handle in handles:
        if ours & set(gpu_pids(nvml, handle)):
            return handle
    visible = os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",")[0].strip()
    try:
        if visible.isdigit() and os.environ.get("CUDA_DEVICE_ORDER") == "PCI_BUS_ID":
            return handles[int(visible)]
        if visible.startswith(("GPU-", "MIG-")):
            return nvml.nvmlDeviceGetHandleByUUID(visible)
    except Exception:  # noqa: BLE001
        pass
    return handles[0] if len(handles) == 1 else None


def gpu_utilisation(nvml, handle, since_us: int) -> dict[int, int] | None:
    """pid -> highest SM utilisation (%) NVML sampled since `since_us`, or None where it cannot say."""
    try:
        samples = nvml.nvmlDeviceGetProcessUtilization(handle, since_us)
    except Exception:  # noqa: BLE001 - not supported, or no sample in the window
        return None
    highest: dict[int, int] = {}
    for sample in samples:
        highest[int(sample.pid)] = max(highest.get(int(sample.pid), 0), int(sample.smUtil))
    return highest


def ancestors(pid: int) -> list[psutil.Process]:
    """The processes above `pid` (the job process's: Snakemake, the shell that started it), init left out."""
    try:
        return [process for process in psutil.Process(pid).parents() if process.pid > 1]
    except psutil.Error:
        return []


def affinity(process: psutil.Process) -> set[int]:
    """The CPUs a process may run on (every CPU where that cannot be read)."""
    try:
        return set(process.cpu_affinity())
    except (psutil.Error, AttributeError, OSError):
        return set(range(os.cpu_count() or 1))
