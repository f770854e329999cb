"""One GPU per job: Snakemake counts GPUs (`--resources gpu=N`) but assigns no ids, so a CUDA job claims
a free one itself, with an exclusive lock per GPU, and pins itself to it with CUDA_VISIBLE_DEVICES.

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

from fmtbench import hardware

LOCK_DIR = Path("artifacts/locks/gpu")


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
