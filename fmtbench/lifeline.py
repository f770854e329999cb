"""A process ends with the one that started it.

Snakemake 9.27 runs a `script:` job as `bash -c '... python script.py'` from a thread of its main process, and bash
execs Python, so a job's parent is Snakemake itself (tests/test_lifeline.py checks it). Killed with SIGKILL,
Snakemake cannot stop its jobs: they were re-parented to PID 1 and went on exporting, measuring and writing beside
the next run. So each job asks the kernel for a signal when its parent dies (prctl PR_SET_PDEATHSIG), and so does
every process a job starts (a measuring child, an export's fresh interpreter): the whole tree ends with Snakemake.

- `hold()`, in a job or an export's interpreter: SIGTERM, which unwinds the process as Ctrl-C does (temporary files
  removed, a child stopped and waited for), and SIGKILL after GRACE_S if the unwinding hangs.
- `tie(parent)`, in a forked measuring child (it writes nothing of its own): SIGKILL.

The signal comes when the thread that started the process ends: start children from a thread that outlives them
(the main thread does). A parent that died before the request was made is caught by looking afterwards: the
parent's pid, and for a job the Snakemake process the Snakefile names in OWNER (pid and start time, on this host).
Linux only; elsewhere nothing is asked and nothing changes.
"""
from __future__ import annotations

import logging
import os
import signal
import socket
import threading

OWNER = "FMTBENCH_SNAKEMAKE"  # "<host> <pid> <start time>" of the Snakemake process whose jobs these are
PR_SET_PDEATHSIG = 1
GRACE_S = 20.0  # an unwinding that takes longer is cut short (SIGKILL)
STOPPED = 128 + signal.SIGTERM  # a shell's exit status for a process ended by SIGTERM

log = logging.getLogger("fmtbench")


def _ask_for(sig: int) -> bool:
    """prctl(PR_SET_PDEATHSIG, sig) for this process; False where the kernel has no such call (not Linux)."""
    import ctypes
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(PR_SET_PDEATHSIG, int(sig), 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def start_time(pid: int) -> float | None:
    """When a process started (s since the epoch, as psutil and the kernel give it), or None if it is gone."""
    import psutil
    try:
        return round(psutil.Process(pid).create_time(), 2)
    except psutil.Error:
        return None


def name_owner() -> None:
    """In Snakemake's main process (the Snakefile): the jobs it starts inherit who their owner is."""
    os.environ[OWNER] = f"{socket.gethostname()} {os.getpid()} {start_time(os.getpid())}"


def owner_gone() -> bool:
    """Whether the Snakemake process named in OWNER has ended (False where none is named, or another host's)."""
    try:
        host, pid, started = os.environ[OWNER].split()
    except (KeyError, ValueError):
        return False
    return host == socket.gethostname() and str(start_time(int(pid))) != started


def _stop(signum, _frame) -> None:
    """SIGTERM: unwind (finally blocks, context managers) and exit with STOPPED; cut short after GRACE_S."""
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # a second SIGTERM ends the process at once
    killer = threading.Timer(GRACE_S, os.kill, (os.getpid(), signal.SIGKILL))
    killer.daemon = True
    killer.start()
    log.warning("stopped (SIGTERM%s): nothing half-written left; the same command resumes",
                ": the Snakemake process that started this job is gone" if owner_gone() else "")
    raise SystemExit(STOPPED)


def hold(parent: int | None = None) -> None:
    """This process ends (SIGTERM, unwinding) when the thread that started it ends, and at once if `parent` (or, for a
    Snakemake job, its Snakemake process) is already gone."""
    parent = os.getppid() if parent is None else parent
    signal.signal(signal.SIGTERM, _stop)
    if _ask_for(signal.SIGTERM) and (os.getppid() != parent or owner_gone()):
        _stop(signal.SIGTERM, None)


def tie(parent: int) -> None:
    """A forked child: killed (SIGKILL) when the thread that forked it ends; gone at once if `parent` already is.
    SIGTERM from anyone else ends it as before (the handler a job installed is not inherited)."""
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    if _ask_for(signal.SIGKILL) and os.getppid() != parent:
        os._exit(STOPPED)
