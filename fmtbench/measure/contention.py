"""What else used the machine while a configuration was measured (the idea of pyperf's system check).

A benchmark that shares its cores or its GPU with other work times that work too, and nothing in its numbers
says so. `Watch` records, over a configuration (from its baseline through its first call, warm-up and timed
phases: long enough for the kernel's clock ticks to tell):

- its cores: their busy time (per-CPU /proc/stat deltas: user, nice, system, irq, softirq) minus the CPU time of
  our own process tree (the measuring process, its DataLoader workers, the job process that forked it and
  answers its marks, all pinned to these cores) and the part of the study's own processes above it (Snakemake;
  not pinned: counted in proportion to the share of their CPUs that are ours), as a share of the cores' capacity
  — never below 0: the clock ticks can put a little more of our own time on these cores than they counted; the
  hypervisor's steal time on those cores; the 1-minute load average; the busiest other processes, anywhere on
  the machine, with their command lines (the study's own other jobs among them: an export, another benchmark
  job's workers); the run-queue wait of the measuring process's threads (a figure, not a criterion);
- the rest of the machine: what other processes used anywhere, as a share of every CPU's capacity (`elsewhere`):
  for a CPU row, heavy work on other cores (a compiler beside it) still takes memory bandwidth, caches and clock
  boost, so it counts;
- the GPU (CUDA rows): the compute and graphics processes on our GPU that are not ours (NVML), and their SM
  utilisation over the phase where the driver reports per-process utilisation.

A configuration is `contended` when other processes' busy share of our cores is above OTHERS_SHARE_MAX, steal
above STEAL_SHARE_MAX, another process used our GPU, or (CPU rows) others used more than OTHERS_SHARE_MAX of the
whole machine. The kernel counts CPU time in clock ticks (10 ms at USER_HZ 100): the judgement subtracts that
resolution first (the raw figures are in the record).

Light imports only (os, time, psutil; pynvml on CUDA rows): the Snakefile calls `study_start_warning`.
"""
from __future__ import annotations

import os
import time

from fmtbench.measure import procinfo
from fmtbench.measure.procinfo import TICK_S, TOP_OTHERS

# Other processes' busy time on our cores above this share of the cores' capacity marks a configuration (and, for
# CPU rows, other processes' time anywhere above this share of the whole machine's).
OTHERS_SHARE_MAX = 0.10
# Steal time (a VM's hypervisor running other guests) on our cores above this share marks it too.
STEAL_SHARE_MAX = 0.05
# Another process on our GPU marks it, unless NVML reports its SM utilisation over the phase at or below this (%).
GPU_OTHERS_SM_MAX = 5
# Mark rows so in the report's tables (the symbol is the report's; kept here beside the thresholds it stands for).
MARK = "§"
CPU_METHOD = ("per-CPU /proc/stat busy time (user+nice+system+irq+softirq) of the measuring process's cores over "
              "the configuration, minus the CPU time of our own process tree and job process (psutil) and the "
              "study's own share there; steal from /proc/stat; contended above "
              f"{OTHERS_SHARE_MAX:.0%} of the cores' capacity for others or {STEAL_SHARE_MAX:.0%} steal, after "
              "subtracting the clock-tick resolution (CPU rows: also above "
              f"{OTHERS_SHARE_MAX:.0%} of the whole machine for others anywhere)")
GPU_METHOD = ("NVML compute and graphics processes on our GPU at the start and end of the configuration that are "
              "not ours; contended if one is there (unless NVML's per-process SM utilisation over it is at most "
              f"{GPU_OTHERS_SM_MAX} %)")
_now = time.perf_counter  # (tests replace it)


def _study(ours: list) -> list:
    """The study's own processes above our tree (Snakemake and the shell that started it): neither ours nor others."""
    top = ours[-1].pid if ours else None
    return procinfo.ancestors(top) if top else []


class Watch:
    """`Watch(device, cores, pid)`: `start()` at a configuration's start, `stop()` at its end; `stop` returns a
    JSON-able record with `contended` and the figures it was judged on. `cores`: the CPUs the measuring process
    `pid` runs on (None: its affinity). Our own processes: `pid`'s tree and its parent, the job process."""

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

    def _ours(self) -> list:
        return procinfo.tree(self.pid, with_parent=True)

    def _excluded(self, ours: list) -> set[int]:
        return {p.pid for p in ours} | {p.pid for p in self._study}

    def start(self) -> Watch:
        ours = self._ours()
        self._study = _study(ours)
        self._others = procinfo.others(self._excluded(ours))
        self._gpu = None
        if self.device == "cuda":
            nvml = procinfo.nvml()
            handle = procinfo.our_gpu(nvml, {p.pid for p in ours}) if nvml else None
            if handle is not None:
                self._gpu = (nvml, handle, procinfo.gpu_pids(nvml, handle))
        # The counters last, as close to the measured phase as possible.
        self._wait = procinfo.run_queue_wait_ns(self.pid)
        self._own = procinfo.own_seconds(ours)
        self._study_seconds = procinfo.own_seconds(self._study)
        self._stat = procinfo.proc_stat()
        self._started = _now()
        self._started_us = int(time.time() * 1e6)
        return self

    def stop(self) -> dict:
        if self._started is None:
            raise RuntimeError("Watch.stop() before start()")
        seconds = _now() - self._started
        stat = procinfo.proc_stat()
        ours = self._ours()
        own_now = procinfo.own_seconds(ours)
        study_now = procinfo.own_seconds(self._study)
        wait = procinfo.run_queue_wait_ns(self.pid)
        others_now = procinfo.others(self._excluded(ours))
        record = self._cpu_record(seconds, stat, own_now, study_now, wait)
        record.update(self._elsewhere(seconds, others_now))
        record["busiest_others"] = procinfo.busiest(self._others, others_now, seconds)
        contended = record["cpu_contended"] or (self.device == "cpu" and record["elsewhere_contended"])
        methods = [CPU_METHOD]
        if self.device == "cuda":
            record.update(self._gpu_record({p.pid for p in ours}))
            contended = contended or bool(record["gpu_contended"])
            methods.append(GPU_METHOD)
        record["contended"] = bool(contended)
        record["method"] = "; ".join(methods)
        return record

    def _study_on_our_cores(self, study_now: dict) -> float:
        """The study's own processes' CPU seconds, in proportion to the share of their CPUs that are ours."""
        total = 0.0
        for process in self._study:
            spent = study_now.get(process.pid, 0.0) - self._study_seconds.get(process.pid, 0.0)
            allowed = procinfo.affinity(process)
            total += max(spent, 0.0) * len(allowed & set(self.cores)) / max(len(allowed), 1)
        return total

    def _cpu_record(self, seconds: float, stat: dict, own_now: dict, study_now: dict, wait: dict) -> dict:
        cores = [cpu for cpu in self.cores if cpu in stat and cpu in self._stat]
        busy = sum(stat[c][0] - self._stat[c][0] for c in cores) * TICK_S
        steal = sum(stat[c][1] - self._stat[c][1] for c in cores) * TICK_S
        # A process of the tree that ended between the readings is in its parent's children_* times once reaped.
        own = sum(now - self._own.get(pid, 0.0) for pid, now in own_now.items())
        study = self._study_on_our_cores(study_now)
        capacity = seconds * len(cores)
        others = max(0.0, busy - own - study)
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
            "study_cpu_s": round(study, 3),
            "others_busy_s": round(others, 3),
            "others_share": None if others_share is None else round(others_share, 4),
            "steal_share": None if steal_share is None else round(steal_share, 4),
            "resolution_s": round(resolution, 3),
            "run_queue_wait_s": round(waited, 4) if wait else None,
            "loadavg_1min": procinfo.loadavg(),
            "cpus": os.cpu_count(),
            "cpu_contended": bool(judged_share > OTHERS_SHARE_MAX or judged_steal > STEAL_SHARE_MAX),
            "thresholds": {"others_share": OTHERS_SHARE_MAX, "steal_share": STEAL_SHARE_MAX,
                           "gpu_others_sm_pct": GPU_OTHERS_SM_MAX},
        }

    def _elsewhere(self, seconds: float, others_now: dict) -> dict:
        """Other processes' CPU time anywhere on the machine, as a share of all its CPUs."""
        used = sum(max(0.0, cpu - self._others.get(pid, (name, 0.0))[1]) for pid, (name, cpu) in others_now.items())
        capacity = seconds * (os.cpu_count() or 1)
        resolution = TICK_S * 2 * max(len(others_now), 1)
        share = used / capacity if capacity > 0 else None
        judged = max(0.0, used - resolution) / capacity if capacity > 0 else 0.0
        return {"elsewhere_s": round(used, 3), "elsewhere_share": None if share is None else round(share, 4),
                "elsewhere_contended": bool(judged > OTHERS_SHARE_MAX)}

    def _gpu_record(self, ours: set[int]) -> dict:
        if self._gpu is None:
            return {"gpu_contended": None, "gpu_others": None, "gpu_note": "NVML could not name our GPU"}
        nvml, handle, before = self._gpu
        after = procinfo.gpu_pids(nvml, handle)
        seen = set(before) | set(after)
        if seen and not ours & seen:
            # Another PID namespace (a container): NVML's pids are the host's. Only the count can tell: one is us.
            others = sorted(seen)[: max(0, len(seen) - 1)]
            note = "NVML pids are from another PID namespace: all but one process counted as others"
        else:
            others, note = sorted(seen - ours), None
        utilisation = procinfo.gpu_utilisation(nvml, handle, self._started_us)
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
        "elsewhere_share_max": worst("elsewhere_share"),
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
    ours = {p.pid for p in procinfo.tree(me)}
    before_others = procinfo.others(ours)
    before, own_before, started = procinfo.proc_stat(), procinfo.own_seconds(procinfo.tree(me)), time.perf_counter()
    time.sleep(seconds)
    elapsed = time.perf_counter() - started
    after, own_after = procinfo.proc_stat(), procinfo.own_seconds(procinfo.tree(me))
    present = [c for c in cores if c in before and c in after]
    capacity = elapsed * len(present)
    busy = sum(after[c][0] - before[c][0] for c in present) * TICK_S
    steal = sum(after[c][1] - before[c][1] for c in present) * TICK_S
    own = sum(now - own_before.get(pid, 0.0) for pid, now in own_after.items())
    resolution = TICK_S * 2 * len(present)
    problems = []
    if capacity > 0 and max(0.0, busy - own - resolution) / capacity > OTHERS_SHARE_MAX:
        busiest = procinfo.busiest(before_others, procinfo.others(ours), elapsed)
        names = ", ".join(f"{b['name']} (pid {b['pid']}) {b['cpu_share']:.0%} of a CPU" for b in busiest)
        problems.append(f"other processes kept {max(0.0, busy - own) / capacity:.0%} of {_core_text(present)} busy"
                        + (f" (busiest: {names})" if names else ""))
    if capacity > 0 and max(0.0, steal - resolution) / capacity > STEAL_SHARE_MAX:
        problems.append(f"the hypervisor stole {steal / capacity:.0%} of them")
    nvml = procinfo.nvml() if os.path.exists("/proc/driver/nvidia") or os.environ.get("FMTBENCH_CHECK_GPU") else None
    if nvml is not None:
        try:
            for index in range(nvml.nvmlDeviceGetCount()):
                pids = procinfo.gpu_pids(nvml, nvml.nvmlDeviceGetHandleByIndex(index))
                if pids:
                    problems.append(f"GPU {index} runs {len(pids)} other process(es) (pids "
                                    f"{', '.join(map(str, sorted(pids)[:5]))})")
        except Exception:  # noqa: BLE001 - NVML answered init but not this
            pass
    if not problems:
        return None
    load = procinfo.loadavg()
    return ("fmtbench: the machine is not quiet: " + "; ".join(problems)
            + (f"; load average {load} on {os.cpu_count()} CPUs" if load is not None else "")
            + f". Rows timed while other processes use their cores or GPU are marked {MARK} in the report.")
