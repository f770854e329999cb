"""The host's CPUs in turns: a CPU row is timed only while none of the study's heavy host work runs.

A CPU row times the CPU, and any other work on the machine (another job's DataLoader workers decoding JPEGs, an
export compiling) takes memory bandwidth, caches and clock boost from it, even on cores of its own. Until
2026-12-07 a CPU job claimed every core from Snakemake, so nothing ran beside it and the GPU idled for the CPU rows'
whole time (388 s of the default grid on an H100). Now the host is taken in turns through one lock file per
machine (flock: the kernel releases it when its holder dies, however it ends):

- **exclusive**: a CPU row's configuration, taken by its measuring process from before its baseline to after its
  accuracy check (the configuration's contention watch still judges what else ran; the process waits with a
  heartbeat to its job, so a long wait is not taken for a hang);
- **shared**: the work that would disturb a CPU row: a CUDA job's real-loader measuring processes (their workers
  decode on the CPU), an export, the reference logits. Shared holders run side by side.
- **none**: what barely uses the host: a CUDA job's model-alone processes (one host thread feeding the GPU; the CPU
  row's watch counts it among the others on the machine), Snakemake, the report.

A CUDA job keeps its shared turn from one real-loader process to the next and gives it back when it starts a
model-alone process or ends (measure.schedule), so a CPU row waiting for its turn runs beside model-alone processes
instead of squeezing in between two real-loader processes and stopping the GPU job behind it.

The lock file is the machine's, whoever runs the study: FMTBENCH_HOST_LOCK, else
`<temp dir>/fmtbench-host-<host>.lock`, opened read-only (flock needs no more; another user's file in a sticky
temp dir can be opened so, not created again). Tests give each session its own. Where it cannot be opened, work
goes on unlocked and each record says so (`coordinated: false`).
Light imports only (the Snakefile's adapters use it).
"""
from __future__ import annotations

import fcntl
import logging
import os
import socket
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass

log = logging.getLogger(__name__)

EXCLUSIVE, SHARED = "exclusive", "shared"
POLL_S = 0.02  # how often a waiter with a heartbeat tries the lock again
PATIENCE_S = 60.0  # an exclusive taker waiting this long stops new shared turns until it has its own
ENV = "FMTBENCH_HOST_LOCK"
_warned: set[str] = set()


def lock_path() -> str:
    """This machine's lock file (FMTBENCH_HOST_LOCK overrides it)."""
    given = os.environ.get(ENV)
    if given:
        return given
    host = socket.gethostname().split(".")[0] or "host"
    return os.path.join(tempfile.gettempdir(), f"fmtbench-host-{host}.lock")


@dataclass(frozen=True)
class Taken:
    """One turn as taken: its kind, how long its holder waited for it, and whether the lock file was there at all."""
    kind: str
    waited_s: float
    coordinated: bool = True


class Turns:
    """One process's turns on the host: `take` blocks until the kind is granted; `release` gives it back. A kind
    taken again while held is kept (no wait); another kind is changed to after releasing the first (flock
    converts in place, which could deadlock two converters).

    No starving: shared holders may overlap without end (several CUDA jobs' real loaders on a host of several GPUs),
    so an exclusive taker that has waited PATIENCE_S closes a gate (a second lock file beside the first): a shared
    taker passes the gate before taking its turn, so none starts while it is closed; those already holding theirs
    finish, the exclusive turn is granted and the gate opens again."""

    def __init__(self, path: str | None = None):
        self.path = path or lock_path()
        self.fd: int | None = None
        self.gate: int | None = None
        self.kind: str | None = None

    def _open_file(self, path: str) -> int | None:
        try:
            try:
                return os.open(path, os.O_RDONLY | os.O_CLOEXEC)
            except FileNotFoundError:
                return os.open(path, os.O_RDONLY | os.O_CREAT | os.O_CLOEXEC, 0o666)
        except OSError as err:
            if self.path not in _warned:
                _warned.add(self.path)
                log.warning("the host's turns cannot be coordinated (%s: %s): CPU rows are measured whatever else runs",
                            path, err.strerror)
            return None

    def _open(self) -> int | None:
        if self.fd is None:
            self.fd = self._open_file(self.path)
        if self.fd is not None and self.gate is None:
            self.gate = self._open_file(self.path + ".gate")
        return self.fd if self.gate is not None else None

    def take(self, kind: str, heartbeat=None, every_s: float = 30.0, patience_s: float | None = None) -> Taken:
        """Blocks until the turn is granted. `heartbeat`: called every `every_s` while waiting (a measuring process
        tells its job it is alive, so a long wait is not taken for a hang); the lock is then polled every POLL_S
        instead of waited for in the kernel. An exclusive taker closes the gate after `patience_s` (default
        PATIENCE_S) of waiting."""
        if kind not in (EXCLUSIVE, SHARED):
            raise ValueError(f"a turn is {EXCLUSIVE} or {SHARED}, not {kind!r}")
        if self.kind == kind:
            return Taken(kind, 0.0)
        self.release()
        fd = self._open()
        if fd is None:
            return Taken(kind, 0.0, coordinated=False)
        started = time.perf_counter()
        if kind == SHARED:
            fcntl.flock(self.gate, fcntl.LOCK_SH)  # waits while an exclusive taker out of patience holds it
            try:
                self._wait(fcntl.LOCK_SH, heartbeat, every_s, None)
            finally:
                fcntl.flock(self.gate, fcntl.LOCK_UN)
        else:
            self._wait(fcntl.LOCK_EX, heartbeat, every_s, PATIENCE_S if patience_s is None else patience_s)
        self.kind = kind
        return Taken(kind, round(time.perf_counter() - started, 3))

    def _wait(self, operation: int, heartbeat, every_s: float, patience_s: float | None) -> None:
        """The lock of `operation` on the turn's file; with a heartbeat or patience, polled."""
        if heartbeat is None and patience_s is None:
            fcntl.flock(self.fd, operation)
            return
        started = beat = time.perf_counter()
        gated = False
        try:
            while True:
                try:
                    fcntl.flock(self.fd, operation | fcntl.LOCK_NB)
                    return
                except BlockingIOError:
                    now = time.perf_counter()
                    if heartbeat is not None and now - beat >= every_s:
                        heartbeat()
                        beat = now
                    if patience_s is not None and not gated and now - started >= patience_s:
                        try:
                            fcntl.flock(self.gate, fcntl.LOCK_EX | fcntl.LOCK_NB)  # no new shared turn from now
                            gated = True
                            log.info("waited %.0f s for an exclusive turn: no new shared turn until it is granted",
                                     now - started)
                        except BlockingIOError:
                            pass  # a shared taker is passing it, or another exclusive taker closed it
                    time.sleep(POLL_S)
        finally:
            if gated:
                fcntl.flock(self.gate, fcntl.LOCK_UN)

    def release(self) -> None:
        if self.kind is not None and self.fd is not None:
            fcntl.flock(self.fd, fcntl.LOCK_UN)
        self.kind = None

    def close(self) -> None:
        self.release()
        for fd in (self.fd, self.gate):
            if fd is not None:
                os.close(fd)
        self.fd = self.gate = None

    @contextmanager
    def hold(self, kind: str):
        """A turn for the block's duration; yields the Taken record."""
        taken = self.take(kind)
        try:
            yield taken
        finally:
            self.release()


@contextmanager
def shared(what: str):
    """A shared turn for one piece of heavy host work (an export, the reference logits), logged when it waited."""
    turns = Turns()
    try:
        with turns.hold(SHARED) as taken:
            if taken.waited_s >= 1:
                log.info("%s waited %.1f s for a CPU row to end", what, taken.waited_s)
            yield taken
    finally:
        turns.close()
