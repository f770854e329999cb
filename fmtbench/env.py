"""The environment a result was measured in."""
from __future__ import annotations

import datetime as dt
import os
import platform
import socket

from fmtbench import hardware, versions

LIBRARIES = ("torch", "torchvision", "onnx", "onnxruntime", "numpy", "torch_tensorrt", "tensorrt")


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
    }
    try:
        import pynvml
        pynvml.nvmlInit()
        info["driver"] = pynvml.nvmlSystemGetDriverVersion()
        pynvml.nvmlShutdown()
    except Exception as err:  # NVML missing or not permitted: the rest still stands
        info["driver"] = f"unknown ({type(err).__name__})"
    return info


def capture(device: str, cuda_ready: bool = False) -> dict:
    """Machine, libraries and time. GPU details only where CUDA was initialised by the caller."""
    env = {
        "hostname": socket.gethostname(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpu_model": hardware.cpu_model(),
        "cpu_count": os.cpu_count(),
        "gpu_fingerprint": hardware.gpu_fingerprint(),
        "libraries": versions.versions(LIBRARIES),
        "measured_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
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
