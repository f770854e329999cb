"""Cheap hardware identity for the Snakefile (no torch import, no CUDA initialisation).

The GPU fingerprint goes into the params of CUDA jobs and the CPU fingerprint into those of CPU jobs,
so a workspace that moves to other hardware reruns exactly the rows measured on hardware that changed.
"""
from __future__ import annotations

import glob
import os
import platform
import re
import shutil
import subprocess
from functools import cache

NO_CUDA = "no-cuda"


@cache
def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown-cpu"


def _gpu_names_from_proc() -> list[str]:
    names = []
    for info in sorted(glob.glob("/proc/driver/nvidia/gpus/*/information")):
        with open(info, encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("Model:"):
                    names.append(line.split(":", 1)[1].strip())
    return names


def _gpu_names_from_smi() -> list[str]:
    smi = shutil.which("nvidia-smi")
    if not smi:
        return []
    try:
        out = subprocess.run([smi, "--query-gpu=name", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=20, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return [line.strip() for line in out.splitlines() if line.strip()]


@cache
def gpu_fingerprint() -> str:
    """Model name of the first visible NVIDIA GPU, or NO_CUDA. FMTBENCH_GPU_FINGERPRINT overrides it."""
    override = os.environ.get("FMTBENCH_GPU_FINGERPRINT")
    if override:
        return override
    if os.environ.get("CUDA_VISIBLE_DEVICES", None) in ("", "-1"):
        return NO_CUDA
    names = _gpu_names_from_proc() or _gpu_names_from_smi()
    return names[0] if names else NO_CUDA


@cache
def gpu_count() -> int:
    """NVIDIA GPUs on this host (all of them, whatever CUDA_VISIBLE_DEVICES says)."""
    return len(_gpu_names_from_proc() or _gpu_names_from_smi())


def device_fingerprint(device: str) -> str:
    return gpu_fingerprint() if device == "cuda" else cpu_model()


def slug(text: str) -> str:
    text = re.sub(r"\((R|TM)\)", "", text, flags=re.IGNORECASE)
    return re.sub(r"[^A-Za-z0-9.]+", "-", text).strip("-").lower() or "unknown"


def host_tag(host_label: str | None) -> str:
    """Name of this machine's results directory: the user's label, else its GPU (or CPU) model."""
    if host_label:
        return host_label
    gpu = gpu_fingerprint()
    return slug(gpu) if gpu != NO_CUDA else "cpu-" + slug(cpu_model())


def usable_cores() -> list[int]:
    """The logical CPUs this process may run on (affinity, cgroup cpusets, taskset, SLURM), not the machine's."""
    try:
        return sorted(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return list(range(os.cpu_count() or 1))


def physical_cores(cpus) -> int:
    """Distinct physical cores among the logical CPUs `cpus` (hyper-threads of one core count once)."""
    cores = set()
    for cpu in cpus:
        base = f"/sys/devices/system/cpu/cpu{cpu}/topology"
        try:
            with open(f"{base}/core_id") as core, open(f"{base}/physical_package_id") as package:
                cores.add((package.read().strip(), core.read().strip()))
        except OSError:
            cores.add(("?", str(cpu)))
    return len(cores)


def core_plan(cuda_rows: bool, cpu_threads: int | None = None, cores: list[int] | None = None) -> dict:
    """Which cores each kind of job runs on, so that nothing CPU-heavy shares the cores of a timed job.

    Without CUDA rows, CPU rows take `cpu_threads` cores (default: all) and exports all. With CUDA rows on
    a machine of 4 cores or more the cores are split: exports get an eighth (at least one), CPU rows
    `cpu_threads` or half of the rest, CUDA jobs (the measuring process and its DataLoader workers) the
    remainder, so CPU rows run beside the GPU rows instead of after them."""
    cores = list(cores if cores is not None else usable_cores())
    if not cuda_rows or len(cores) < 4:
        cpu = cores[-cpu_threads:] if cpu_threads and cpu_threads < len(cores) else cores
        return {"cpu": cpu, "cuda": cores, "export": cores}
    export_count = max(1, len(cores) // 8)
    rest, export = cores[:-export_count], cores[-export_count:]
    cpu_count = min(cpu_threads or len(rest) // 2, len(rest) - 1)
    return {"cuda": rest[:len(rest) - cpu_count], "cpu": rest[len(rest) - cpu_count:], "export": export}


def cpu_job_claim(plan: dict, total: int | None, turns: bool) -> int:
    """What a CPU benchmark job claims of Snakemake's cores (`total`: --cores; None under a cluster executor, where
    each job has a node's share of its own). Where the cores are split for CUDA rows and CPU rows take the host in
    turns (fmtbench.host_turns: their measuring processes run only while no real loader's workers, export or
    reference do), only its own: a CUDA job (its share) and exports (a CUDA export takes the CUDA jobs' and the
    exports' cores) run beside it. Else every core, so that nothing of the study runs beside its timed rows."""
    own = len(plan["cpu"])
    if total is None or (turns and set(plan["cpu"]).isdisjoint(plan["cuda"])):
        return own
    return max(total, own)


def gpu_slices(cores: list[int], gpus: int) -> list[list[int]]:
    """The CUDA jobs' cores split into one contiguous share per GPU, so that CUDA jobs running at once on
    several GPUs (each with its DataLoader workers) never share a core; one share with one GPU or none."""
    cores, count = list(cores), max(1, min(gpus, len(cores)))
    size = len(cores) // count
    return [cores[index * size:(index + 1) * size] for index in range(count)]


def pin(cores) -> list[int]:
    """Runs this process (and what it starts) on `cores` where it may; returns the cores it runs on."""
    allowed = set(usable_cores())
    chosen = sorted(set(cores) & allowed) or sorted(allowed)
    try:
        os.sched_setaffinity(0, chosen)
    except (AttributeError, OSError):
        pass
    return usable_cores()
