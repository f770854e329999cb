"""A function run in a process of its own, and what became of it (one classifier for every stage).

Two ways, one outcome type:
- `run_forked`: a child forked from the calling process (the benchmark job, which has imported the
  libraries but never initialised CUDA). The child reports the stages it reaches with `mark(name)`; the
  parent answers each mark (its device-memory, energy and clock readings are taken there) and records
  when it arrived, which is where the per-stage breakdown of a study comes from.
- `run_interpreter`: a fresh Python interpreter (the export stage: a compiler may crash, and CUDA must not
  be initialised inside a forked Snakemake process). `mark` there writes the stage to a progress file, so
  a crash names the step it happened in.

A child that raises becomes an Outcome with the status `classify` gives; one that dies (a signal,
os._exit) or hangs past its timeout becomes `failed`, naming the last stage it reached.
"""
from __future__ import annotations

import importlib
import logging
import multiprocessing
import os
import pickle
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from fmtbench import lifeline

log = logging.getLogger(__name__)

_CHANNEL = None          # in a forked child: the duplex connection to the parent
_PROGRESS: int | None = None    # in a fresh interpreter: the file descriptor `mark` writes the stage reached to
_FORKED_AT: float | None = None  # in the parent: perf_counter when the current forked child started


def elapsed() -> float:
    """In the parent, inside `on_mark`: seconds since the current forked child started."""
    return time.perf_counter() - _FORKED_AT if _FORKED_AT is not None else 0.0


@dataclass
class Outcome:
    status: str
    reason: str | None = None
    value: Any = None
    # Parent-side seconds since the fork at which each mark arrived, then "result" and "exited".
    stages: dict = field(default_factory=dict)
    # The process was killed or timed out: the same configuration may well succeed in another run.
    transient: bool = False


def _killed(exit_code: int | None) -> bool:
    """Killed from outside (the OOM killer, a user, a scheduler): the configuration itself may be fine. A crash
    of its own (SIGSEGV, SIGABRT) is not transient: it would repeat."""
    return exit_code is not None and -exit_code in (signal.SIGKILL, signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


def mark(name: str, **data) -> dict:
    """The child reached stage `name` (after synchronising what it measures); returns the parent's reply.

    Outside an isolated process this does nothing and returns {}: measuring code runs the same in tests."""
    if _CHANNEL is not None:
        _CHANNEL.send_bytes(pickle.dumps(("mark", name, data)))
        return pickle.loads(_CHANNEL.recv_bytes())
    if _PROGRESS is not None:
        os.ftruncate(_PROGRESS, 0)
        os.pwrite(_PROGRESS, name.encode(), 0)
    return {}


class Unavailable(RuntimeError):
    """This configuration cannot run on this machine (no CUDA, a library missing): recorded, not raised."""


class OomMarkers(Protocol):
    """What `classify` reads of a format's spec (backends.base.FormatSpec)."""
    oom_markers: tuple[str, ...]


# Either library's words for an allocation refused: torch's CUDA and CPU allocators ("CUDA out of memory",
# "DefaultCPUAllocator: can't allocate memory"), ONNX Runtime's ("Failed to allocate memory"), the C library's
# ENOMEM ("Cannot allocate memory"), Python's MemoryError.
OOM_MARKERS = ("outofmemory", "out of memory", "failed to allocate memory", "cudaerrormemoryallocation",
               "can't allocate memory", "cannot allocate memory", "memoryerror")


def classify(err: BaseException, spec: OomMarkers | None = None) -> str:
    """One rule for every stage: a missing library or device is `unavailable`, an exhausted device `oom`,
    anything else `failed`. `spec` adds the format's own out-of-memory markers."""
    if isinstance(err, (Unavailable, ImportError)):
        return "unavailable"
    text = f"{type(err).__name__} {err}".lower()
    markers = OOM_MARKERS + (spec.oom_markers if spec else ())
    if any(marker in text for marker in markers):
        return "oom"
    return "failed"


def _failure(err: BaseException, spec: OomMarkers | None, what: str) -> Outcome:
    status = classify(err, spec)
    reason = f"{type(err).__name__}: {err}"[:2000]
    if status == "unavailable":
        log.info("%s: unavailable: %s", what, reason)
    else:
        log.error("%s %s: %s (traceback in the job's log file)", what, status, reason.splitlines()[0][:300])
        log.debug("%s", traceback.format_exc())
    return Outcome(status, reason)


def _signal_name(exit_code: int | None) -> str:
    if exit_code is not None and exit_code < 0:
        try:
            return f"killed by {signal.Signals(-exit_code).name}"
        except ValueError:
            return f"killed by signal {-exit_code}"
    return f"exit code {exit_code}"


# --- forked child --------------------------------------------------------------------------------------

def _forked_child(conn, function, args, spec, parent: int) -> None:
    global _CHANNEL
    lifeline.tie(parent)  # killed with the job: a measuring process never outlives it
    # Ctrl-C reaches the whole process group: the child dies of it at once, silently (the parent, its job,
    # says so in one line), instead of multiprocessing printing the child's KeyboardInterrupt traceback.
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})  # blocked by the parent around the fork
    _CHANNEL = conn
    try:
        outcome = Outcome("ok", value=function(*args))
    except Exception as err:  # noqa: BLE001 - every failure is reported to the parent as data
        outcome = _failure(err, spec, getattr(function, "__name__", "child"))
    # Plain pickle, not the multiprocessing one: that passes torch tensors as shared-memory handles, which die
    # with this process before the parent can open them.
    try:
        payload = pickle.dumps(("result", outcome))
    except Exception as err:  # noqa: BLE001 - an unpicklable value is the child's failure, said as such
        payload = pickle.dumps(("result", Outcome("failed", f"the result could not be pickled: {err}"[:2000])))
    conn.send_bytes(payload)
    conn.close()


def run_forked(function: Callable, *args, timeout: float, spec: OomMarkers | None = None,
               on_mark: Callable[[str, dict], dict] | None = None) -> Outcome:
    """`function(*args)` in a forked child; its return value (picklable) or its failure as an Outcome.

    `on_mark(name, data)` runs in this process for each `mark` of the child, which waits for it; its return
    value is the child's reply. `timeout`: the longest the child may go without a mark (or its result): a
    child that measures many configurations marks each stage of each, so a hang is caught wherever it is."""
    global _FORKED_AT
    context = multiprocessing.get_context("fork")
    parent_end, child_end = context.Pipe(duplex=True)
    started, forked_at = time.perf_counter(), time.time()
    _FORKED_AT = started
    process = context.Process(target=_forked_child, args=(child_end, function, args, spec, os.getpid()))
    # Ctrl-C during the fork would raise KeyboardInterrupt inside an at-fork handler (logging's lock release),
    # where it is printed as a traceback and swallowed (seen in the Ctrl-C test): held until the fork returns.
    blocked = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        process.start()
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
    child_end.close()
    stages: dict = {}
    last = "start"
    outcome = None
    reported = False
    deadline = started + timeout
    try:
        while outcome is None:
            remaining = deadline - time.perf_counter()
            if remaining <= 0:
                outcome = Outcome("failed", f"timed out: no progress for {timeout:.0f} s during stage '{last}'",
                                  transient=True)
                break
            if not parent_end.poll(min(remaining, 0.5)):
                if not process.is_alive() and not parent_end.poll():
                    break
                continue
            message = pickle.loads(parent_end.recv_bytes())
            if message[0] == "mark":
                _, last, data = message
                stages[last] = time.perf_counter() - started
                deadline = time.perf_counter() + timeout
                parent_end.send_bytes(pickle.dumps((on_mark(last, data) if on_mark else None) or {}))
            else:
                outcome, reported = message[1], True
                stages["result"] = time.perf_counter() - started
    except (EOFError, ConnectionError, OSError):
        outcome = None
    process.join(10 if reported else 0.5)
    if process.is_alive():
        process.kill()
        process.join()
    stages["exited"] = time.perf_counter() - started
    stages["forked_at"] = forked_at   # wall clock (epoch s): where the process sits in the study's timeline
    if outcome is None:
        outcome = Outcome("failed", f"the measuring process died ({_signal_name(process.exitcode)}) "
                                    f"during stage '{last}'", transient=_killed(process.exitcode))
    outcome.stages = stages
    return outcome


# --- fresh interpreter ---------------------------------------------------------------------------------

def run_interpreter(target: str, *args, timeout: float | None = None, spec: OomMarkers | None = None,
                    env: dict | None = None) -> Outcome:
    """`module:function` called with `args` in `python -m fmtbench.isolation`; arguments and result are
    pickled through files without a name (nothing is left in the temporary directory whatever ends this process).
    The child's stdout/stderr are this process's; it ends with this process (fmtbench.lifeline)."""
    with tempfile.TemporaryFile() as request, tempfile.TemporaryFile() as result, \
            tempfile.TemporaryFile() as progress:
        pickle.dump((target, args, spec), request)
        request.flush()
        request.seek(0)
        package_root = str(Path(__file__).resolve().parent.parent)
        child_env = {**os.environ, **(env or {})}
        child_env["PYTHONPATH"] = os.pathsep.join(filter(None, [package_root, child_env.get("PYTHONPATH")]))
        files = [request.fileno(), result.fileno(), progress.fileno()]
        started = time.perf_counter()
        with subprocess.Popen([sys.executable, "-m", "fmtbench.isolation", *map(str, files), str(os.getpid())],
                              env=child_env, pass_fds=files) as child:
            try:
                exit_code = child.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()
                exit_code = None
            except BaseException:  # this process is stopping (SIGTERM, Ctrl-C): the child unwinds first, then it goes
                child.terminate()
                try:
                    child.wait(timeout=lifeline.GRACE_S / 2)
                except subprocess.TimeoutExpired:
                    child.kill()
                raise
        stage = os.pread(progress.fileno(), 4096, 0).decode(errors="replace") or "start"
        result.seek(0)
        if payload := result.read():
            outcome = pickle.loads(payload)
        elif exit_code is None:
            outcome = Outcome("failed", f"timed out after {timeout:.0f} s during step '{stage}'")
        else:
            outcome = Outcome("failed", f"the process died ({_signal_name(exit_code)}) during step '{stage}'")
        outcome.stages = {"exited": time.perf_counter() - started}
        return outcome


def _interpreter_child(request: str, result: str, progress: str) -> None:
    global _PROGRESS
    _PROGRESS = int(progress)
    with os.fdopen(int(request), "rb") as handle:
        target, args, spec = pickle.load(handle)
    module_name, function_name = target.split(":")
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("fmtbench").setLevel(logging.INFO)
    import warnings
    warnings.filterwarnings("ignore", category=FutureWarning, module=r"torch\.jit")
    try:
        function = getattr(importlib.import_module(module_name), function_name)
        outcome = Outcome("ok", value=function(*args))
    except Exception as err:  # noqa: BLE001 - reported to the parent as data
        traceback.print_exc()
        outcome = _failure(err, spec, target)
    with os.fdopen(int(result), "wb") as handle:
        pickle.dump(outcome, handle)


if __name__ == "__main__":
    # Run as `python -m`, this file is __main__: use the importable module, so that what the child pickles
    # (Outcome) and the globals `mark` reads are the ones the parent knows.
    signal.signal(signal.SIGINT, signal.SIG_DFL)  # Ctrl-C: the job that started it says so, in one line
    lifeline.hold(parent=int(sys.argv[4]))  # ends with the job: SIGTERM unwinds it (a `.part` file removed)
    from fmtbench import isolation
    isolation._interpreter_child(*sys.argv[1:4])
