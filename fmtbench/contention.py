"""What else used the machine while a configuration was timed (the idea of pyperf's system check).

A benchmark that shares its cores or its GPU with other work times that work too, and nothing in its numbers
says so. `Watch` records, over a configuration's timed phase:

- the CPU: the busy time of the cores the measuring process runs on (per-CPU /proc/stat deltas: user, nice,
  system, irq, softirq), minus the CPU time of our own process tree (the measuring process and its children,
  the DataLoader workers; on CUDA rows also the job process that samples the GPU through NVML for this
  measurement), as a share of those cores' capacity over the phase; the hypervisor's steal time on those cores
  (a VM whose host is busy); the 1-minute load average; the busiest other processes (anywhere on the machine,
  with their command lines); the run-queue wait of the measuring process's threads (/proc/<pid>/task/*/schedstat:
  time they were runnable but had no CPU, its own workers' competition included, so a figure, not a criterion);
- the GPU (CUDA rows): the compute and graphics processes on our GPU that are not ours (NVML), and their SM
  utilisation over the phase where the driver reports per-process utilisation.

A configuration is `contended` when other processes' busy share of our cores is above OTHERS_SHARE_MAX, steal
above STEAL_SHARE_MAX, or another process used our GPU. The kernel counts CPU time in clock ticks (10 ms at
USER_HZ 100): the judgement subtracts that resolution first, so a short phase is marked only when the evidence
is unmistakable (the raw figures are in the record).

Light imports only (os, time, psutil; pynvml on CUDA rows): the Snakefile calls `study_start_warning`.
"""
from __future__ import annotations

import os
import time

import psutil

# Other processes' busy time on our cores above this share of the cores' capacity marks a configuration.
OTHERS_SHARE_MAX = 0.10
# Steal time (a VM's hypervisor running other guests) on our cores above this share marks it too.
STEAL_SHARE_MAX = 0.05
# Another process on our GPU marks it, unless NVML reports its SM utilisation over the phase at or below this (%).
GPU_OTHERS_SM_MAX = 5
# Mark rows so in the report's tables (the symbol is the report's; kept here beside the thresholds it stands for).
MARK = "§"
TICK_S = 1 / os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 0.01
CPU_METHOD = ("per-CPU /proc/stat busy time (user+nice+system+irq+softirq) of the measuring process's cores over "
              "the timed phase, minus the CPU time of our own process tree (psutil); steal from /proc/stat; "
              f"contended above {OTHERS_SHARE_MAX:.0%} of the cores' capacity for others or {STEAL_SHARE_MAX:.0%} "
              "steal, after subtracting the clock-tick resolution")
GPU_METHOD = ("NVML compute and graphics processes on our GPU at the start and end of the timed phase that are not "
              f"ours; contended if one is there (unless NVML's per-process SM utilisation over the phase is at most "
              f"{GPU_OTHERS_SM_MAX} %)")
TOP_OTHERS = 3
_now = time.perf_counter  # (tests replace it)


# --- CPU counters ------------------------------------------------------------------------------------------

def _proc_stat() -> dict[int, tuple[int, int, int]]:
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


def _tree(pid: int, with_parent: bool = False) -> list[psutil.Process]:
    try:
        root = psutil.Process(pid)
        processes = [root, *root.children(recursive=True)]
        parent = root.parent() if with_parent else None
        return processes + ([parent] if parent is not None and parent.pid > 1 else [])
    except psutil.Error:
        return []


def _cpu_seconds(process: psutil.Process, with_reaped: bool = True) -> float:
    """User + system seconds of the process (and of its children it has waited for)."""
    try:
        times = process.cpu_times()
    except psutil.Error:
        return 0.0
    own = times.user + times.system
    return own + (times.children_user + times.children_system if with_reaped else 0.0)


def _own_seconds(processes: list[psutil.Process]) -> dict[int, float]:
    # A child reaped by a process of the tree is counted in that process's children_* times; one still running
    # is counted itself (never both: the kernel adds a child's times to its parent's when the parent waits).
    return {p.pid: _cpu_seconds(p) for p in processes}


def _others(exclude: set[int]) -> dict[int, tuple[str, float]]:
    """Every other process of the machine: (name, user + system seconds)."""
    snapshot = {}
    for process in psutil.process_iter(["name", "cpu_times"]):
        if process.pid in exclude:
            continue
        times = process.info.get("cpu_times")
        if times is not None:
            snapshot[process.pid] = (process.info.get("name") or "?", times.user + times.system)
    return snapshot


def _busiest(before: dict, after: dict, seconds: float) -> list[dict]:
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


def _run_queue_wait_ns(pid: int) -> dict[int, int]:
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


def _loadavg() -> float | None:
    try:
        return round(os.getloadavg()[0], 2)
    except OSError:
        return None


# --- GPU ---------------------------------------------------------------------------------------------------

def _nvml():
    try:
        import pynvml
        pynvml.nvmlInit()
        return pynvml
    except Exception:  # noqa: BLE001 - no NVML library, no driver, no permission
        return None


def _gpu_pids(nvml, handle) -> dict[int, int | None]:
    """pid -> device memory used (bytes, None where NVML does not say) of every process on the GPU."""
    found = {}
    for name in ("nvmlDeviceGetComputeRunningProcesses", "nvmlDeviceGetGraphicsRunningProcesses"):
        try:
            for process in getattr(nvml, name)(handle):
                found[int(process.pid)] = getattr(process, "usedGpuMemory", None)
        except Exception:  # noqa: BLE001 - not supported on this GPU or driver
            continue
    return found


def _our_gpu(nvml, ours: set[int]):
    """Our GPU: the one our processes are on, else the one CUDA_VISIBLE_DEVICES names, else the only one."""
    try:
        count = nvml.nvmlDeviceGetCount()
        handles = [nvml.nvmlDeviceGetHandleByIndex(index) for index in range(count)]
    except Exception:  # noqa: BLE001
        return None
    for handle in handles:
        if ours & set(_gpu_pids(nvml, handle)):
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


def _gpu_utilisation(nvml, handle, since_us: int) -> dict[int, int] | None:
    """pid -> highest SM utilisation (%) NVML sampled since `since_us`, or None where it cannot say."""
    try:
        samples = nvml.nvmlDeviceGetProcessUtilization(handle, since_us)
    except Exception:  # noqa: BLE001 - not supported, or no sample in the window
        return None
    highest: dict[int, int] = {}
    for sample in samples:
        highest[int(sample.pid)] = max(highest.get(int(sample.pid), 0), int(sample.smUtil))
    return highest


# --- the watch ---------------------------------------------------------------------------------------------

class Watch:
    """`Watch(device, cores, pid)`: `start()` right before a configuration's timed phase, `stop()` right after;
    `stop` returns a JSON-able record with `contended` and the figures it was judged on. `cores`: the CPUs the
    measuring process `pid` runs on (None: its affinity)."""

    def __init__(self, device: str, cores: list[int] | None, pid: int):
        self.device, self.pid = device, pid
        if cores:
            self.cores = sorted(cores)
        else:
            try:
                self.cores = sorted(os.sched_getaffinity(pid))
            except (AttributeError, OSError):
                self.cores = list(range(os.cpu_count() or 1))
        self._started = None

    def _ours(self) -> list[psutil.Process]:
        # On CUDA rows the job process (our parent) samples the GPU every ms for this measurement: it is ours.
        return _tree(self.pid, with_parent=self.device == "cuda")

    def start(self) -> Watch:
        ours = self._ours()
        self._others = _others({p.pid for p in ours})
        self._gpu = None
        if self.device == "cuda":
            nvml = _nvml()
            handle = _our_gpu(nvml, {p.pid for p in ours}) if nvml else None
            if handle is not None:
                self._gpu = (nvml, handle, _gpu_pids(nvml, handle))
        # The counters last, as close to the timed phase as possible.
        self._wait = _run_queue_wait_ns(self.pid)
        self._own = _own_seconds(ours)
        self._stat = _proc_stat()
        self._started = _now()
        self._started_us = int(time.time() * 1e6)
        return self

    def stop(self) -> dict:
        if self._started is None:
            raise RuntimeError("Watch.stop() before start()")
        seconds = _now() - self._started
        stat = _proc_stat()
        ours = self._ours()
        own_now = _own_seconds(ours)
        wait = _run_queue_wait_ns(self.pid)
        record = self._cpu_record(seconds, stat, own_now, wait)
        record["busiest_others"] = _busiest(self._others, _others({p.pid for p in ours}), seconds)
        contended = record["cpu_contended"]
        methods = [CPU_METHOD]
        if self.device == "cuda":
            record.update(self._gpu_record({p.pid for p in ours}))
            contended = contended or bool(record["gpu_contended"])
            methods.append(GPU_METHOD)
        record["contended"] = bool(contended)
        record["method"] = "; ".join(methods)
        return record

    def _cpu_record(self, seconds: float, stat: dict, own_now: dict, wait: dict) -> dict:
        cores = [cpu for cpu in self.cores if cpu in stat and cpu in self._stat]
        busy = sum(stat[c][0] - self._stat[c][0] for c in cores) * TICK_S
        steal = sum(stat[c][1] - self._stat[c][1] for c in cores) * TICK_S
        # A process of the tree that ended between the readings is in its parent's children_* times once reaped.
        own = sum(now - self._own.get(pid, 0.0) for pid, now in own_now.items())
        capacity = seconds * len(cores)
        others = busy - own
        resolution = TICK_S * (2 * len(cores) + 2 * len(own_now))
        others_share = others / capacity if capacity > 0 else None
        judged_share = max(0.0, others - resolution) / capacity if capacity > 0 else 0.0
        steal_share = steal / capacity if capacity > 0 else None
        judged_steal = max(0.0, steal - TICK_S * 2 * len(cores)) / capacity if capacity > 0 else 0.0
        waited = sum(ns - self._wait.get(tid, 0) for tid, ns in wait.items()) / 1e9
        return {
            "seconds": round(seconds, 4),
            "cores": cores,
            "cores_busy_s": round(busy, 3),
            "own_cpu_s": round(own, 3),
            "others_busy_s": round(others, 3),
            "others_share": None if others_share is None else round(others_share, 4),
            "steal_share": None if steal_share is None else round(steal_share, 4),
            "resolution_s": round(resolution, 3),
            "run_queue_wait_s": round(waited, 4) if wait else None,
            "loadavg_1min": _loadavg(),
            "cpus": os.cpu_count(),
            "cpu_contended": bool(judged_share > OTHERS_SHARE_MAX or judged_steal > STEAL_SHARE_MAX),
            "thresholds": {"others_share": OTHERS_SHARE_MAX, "steal_share": STEAL_SHARE_MAX,
                           "gpu_others_sm_pct": GPU_OTHERS_SM_MAX},
        }

    def _gpu_record(self, ours: set[int]) -> dict:
        if self._gpu is None:
            return {"gpu_contended": None, "gpu_others": None, "gpu_note": "NVML could not name our GPU"}
        nvml, handle, before = self._gpu
        after = _gpu_pids(nvml, handle)
        seen = set(before) | set(after)
        if seen and not ours & seen:
            # Another PID namespace (a container): NVML's pids are the host's. Only the count can tell: one is us.
            others = sorted(seen)[: max(0, len(seen) - 1)]
            note = "NVML pids are from another PID namespace: all but one process counted as others"
        else:
            others, note = sorted(seen - ours), None
        utilisation = _gpu_utilisation(nvml, handle, self._started_us)
        others_sm = None
        if utilisation is not None and not note:
            others_sm = max((utilisation.get(pid, 0) for pid in others), default=0)
        busy = bool(others) and (others_sm is None or others_sm > GPU_OTHERS_SM_MAX)
        record = {"gpu_contended": busy,
                  "gpu_others": [{"pid": pid, "memory_mb": round(after.get(pid, before.get(pid)) / 2**20, 1)
                                  if after.get(pid, before.get(pid)) is not None else None} for pid in others],
                  "gpu_others_sm_pct_max": others_sm}
        if note:
            record["gpu_note"] = note
        return record


def row_summary(records: list[dict | None]) -> dict | None:
    """One row measured in several processes: contended if any process was; the worst figures of them."""
    present = [r for r in records if r]
    if not present:
        return None

    def worst(key):
        values = [r[key] for r in present if r.get(key) is not None]
        return max(values) if values else None

    others = [len(r["gpu_others"]) for r in present if r.get("gpu_others") is not None]
    return {
        "contended": any(r["contended"] for r in present),
        "contended_processes": sum(bool(r["contended"]) for r in present),
        "processes": len(present),
        "others_share_max": worst("others_share"),
        "steal_share_max": worst("steal_share"),
        "loadavg_1min_max": worst("loadavg_1min"),
        "gpu_other_processes_max": max(others) if others else None,
        "busiest_others": sorted((entry for r in present for entry in r.get("busiest_others") or []),
                                 key=lambda entry: -entry["cpu_s"])[:TOP_OTHERS],
        "method": present[0]["method"],
    }


def _core_text(cores: list[int]) -> str:
    if len(cores) > 1 and cores == list(range(cores[0], cores[-1] + 1)):
        return f"CPUs {cores[0]}-{cores[-1]}"
    return ("CPU " if len(cores) == 1 else "CPUs ") + ",".join(map(str, cores))


def study_start_warning(cores: list[int] | None = None, seconds: float = 0.5) -> str | None:
    """Samples the machine for `seconds` (other processes' busy share of `cores`, steal, the GPUs' processes);
    one line saying what is busy where the machine is not quiet, else None."""
    me = os.getpid()
    cores = sorted(cores) if cores else sorted(os.sched_getaffinity(0))
    ours = {p.pid for p in _tree(me)}
    before_others = _others(ours)
    before, own_before, started = _proc_stat(), _own_seconds(_tree(me)), time.perf_counter()
    time.sleep(seconds)
    elapsed = time.perf_counter() - started
    after, own_after = _proc_stat(), _own_seconds(_tree(me))
    present = [c for c in cores if c in before and c in after]
    capacity = elapsed * len(present)
    busy = sum(after[c][0] - before[c][0] for c in present) * TICK_S
    steal = sum(after[c][1] - before[c][1] for c in present) * TICK_S
    own = sum(now - own_before.get(pid, 0.0) for pid, now in own_after.items())
    resolution = TICK_S * 2 * len(present)
    problems = []
    if capacity > 0 and max(0.0, busy - own - resolution) / capacity > OTHERS_SHARE_MAX:
        busiest = _busiest(before_others, _others(ours), elapsed)
        names = ", ".join(f"{b['name']} (pid {b['pid']}) {b['cpu_share']:.0%} of a CPU" for b in busiest)
        problems.append(f"other processes kept {max(0.0, busy - own) / capacity:.0%} of {_core_text(present)} busy"
                        + (f" (busiest: {names})" if names else ""))
    if capacity > 0 and max(0.0, steal - resolution) / capacity > STEAL_SHARE_MAX:
        problems.append(f"the hypervisor stole {steal / capacity:.0%} of them")
    nvml = _nvml() if os.path.exists("/proc/driver/nvidia") or os.environ.get("FMTBENCH_CHECK_GPU") else None
    if nvml is not None:
        try:
            for index in range(nvml.nvmlDeviceGetCount()):
                pids = _gpu_pids(nvml, nvml.nvmlDeviceGetHandleByIndex(index))
                if pids:
                    problems.append(f"GPU {index} runs {len(pids)} other process(es) (pids "
                                    f"{', '.join(map(str, sorted(pids)[:5]))})")
        except Exception:  # noqa: BLE001 - NVML answered init but not this
            pass
    if not problems:
        return None
    load = _loadavg()
    return ("fmtbench: the machine is not quiet: " + "; ".join(problems)
            + (f"; load average {load} on {os.cpu_count()} CPUs" if load is not None else "")
            + f". Rows timed while other processes use their cores or GPU are marked {MARK} in the report.")
