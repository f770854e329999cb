"""The environment a result was measured in."""
from __future__ import annotations

import datetime as dt
import os
import platform
import re
import socket

from fmtbench import backends, versions
from fmtbench.workflow import hardware


def _gpu(device_index: int = 0) -> dict:
    import torch
    props = torch.cuda.get_device_properties(device_index)
    info = {
        "gpu_name": props.name,
        "gpu_memory_gb": round(props.total_memory / 1024**3, 2),
        "compute_capability": f"{props.major}.{props.minor}",
        "cuda_runtime": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version(),
        "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
        # which card, where a host has several of one model (a study may spread its jobs over them)
        "gpu_uuid": str(getattr(props, "uuid", "") or "") or None,
    }
    info["driver"] = driver_version()
    return info


def driver_version() -> str:
    """The NVIDIA kernel driver's version, from /proc (no NVML in a measuring process: its parent uses it)."""
    try:
        with open("/proc/driver/nvidia/version", encoding="utf-8") as handle:
            match = re.search(r"Kernel Module(?: for [\w]+)?\s+([\d.]+)", handle.read())
        if match:
            return match.group(1)
    except OSError:
        pass
    return "unknown"


SLURM_VARIABLES = {"job_id": "SLURM_JOB_ID", "partition": "SLURM_JOB_PARTITION", "node": "SLURMD_NODENAME",
                   "cpus_per_task": "SLURM_CPUS_PER_TASK", "job_cpus": "SLURM_JOB_CPUS_PER_NODE"}


def capture(device: str, cuda_ready: bool = False) -> dict:
    """Machine, libraries and time. GPU details only where CUDA was initialised by the caller."""
    env = {
        "hostname": socket.gethostname(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpu_model": hardware.cpu_model(),
        "cpu_count": os.cpu_count(),
        "cpu_affinity": hardware.usable_cores(),
        "cpu_physical_cores": hardware.physical_cores(hardware.usable_cores()),
        "gpu_fingerprint": hardware.gpu_fingerprint(),
        "libraries": versions.versions(("numpy", *backends.all_libraries())),
        "measured_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        # Under a scheduler: which job, and the CPUs it granted (cpu_affinity above is what the process may use).
        "slurm": {key: os.environ[name] for key, name in SLURM_VARIABLES.items() if name in os.environ} or None,
    }
    try:
        import torch
        env["torch_threads"] = torch.get_num_threads()
        env["torch_build"] = torch.__version__
    except ImportError:
        pass
    if device == "cuda" and cuda_ready:
        env.update(_gpu())
    return env
