"""Snakemake's lock of a working directory, left behind by a Snakemake process that was killed.

Snakemake 9.27 locks a directory with files under .snakemake/locks/ that list what a run reads and writes, and
removes them when it ends. Killed (SIGKILL, a power loss), it leaves them, and the next run stops ("Directory
cannot be locked ... It can be removed with the --unlock argument"); the files do not say whose they are, and
Snakemake offers no check of their owner. So once Snakemake has locked the directory for a run (the Snakefile's
`onstart`), `claim` writes beside them which process holds them (host, boot, pid and start time) and which lock
files were there; before the next run plans, `release_stale` removes the lock files whose every recorded holder is
gone from this host (its process ended, or the machine rebooted since) and says so in one line. A lock of a live
run, of another host (a shared file system) or that no holder recorded is left to Snakemake and its message.
"""
from __future__ import annotations

import datetime as dt
import json
import os
import re
import socket
from pathlib import Path

from fmtbench.lifeline import start_time

LOCKS = ".snakemake/locks"
LOCK_FILE = re.compile(r"\d+\.(input|output)\.lock")  # Snakemake's own names (persistence/file.py)
HOLDER = "fmtbench-holder-{pid}.json"


def _boot() -> str | None:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return None


def _lock_files(locks: Path) -> dict[str, int]:
    """Snakemake's lock files in `locks`: name -> mtime (ns), which tells a file apart from a later one of its name."""
    try:
        return {entry.name: entry.stat().st_mtime_ns for entry in os.scandir(locks) if LOCK_FILE.fullmatch(entry.name)}
    except OSError:
        return {}


def claim(locks: str | os.PathLike = LOCKS) -> None:
    """In Snakemake's main process once it holds the lock: this process holds the lock files there now."""
    locks, pid = Path(locks), os.getpid()
    record = {"host": socket.gethostname(), "boot": _boot(), "pid": pid, "started": start_time(pid),
              "locks": _lock_files(locks)}
    if record["locks"]:
        (locks / HOLDER.format(pid=pid)).write_text(json.dumps(record))


def _gone(holder: dict) -> bool:
    """Whether a holder is known to have ended: same host, and another boot or no process of that pid and start."""
    if holder.get("host") != socket.gethostname():
        return False
    return holder.get("boot") != _boot() or start_time(holder["pid"]) != holder.get("started")


def release_stale(locks: str | os.PathLike = LOCKS) -> str | None:
    """Removes the lock files every recorded holder of which is gone, and their records; returns the line that says
    so, or None where there was nothing to remove."""
    locks = Path(locks)
    holders = {}
    for path in locks.glob(HOLDER.format(pid="*")):
        try:
            holders[path] = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
    gone = {path for path, holder in holders.items() if _gone(holder)}
    stale = [name for name, mtime in _lock_files(locks).items()
             if (claimants := [path for path, holder in holders.items() if holder["locks"].get(name) == mtime])
             and set(claimants) <= gone]
    for name in stale:
        (locks / name).unlink(missing_ok=True)
    for path in gone:
        path.unlink(missing_ok=True)
    if not stale:
        return None
    owners = ", ".join(f"{holders[path]['pid']} (started "
                       f"{dt.datetime.fromtimestamp(holders[path]['started'] or 0).isoformat(' ', 'seconds')})"
                       for path in sorted(gone) if any(holders[path]["locks"].get(name) for name in stale))
    return (f"fmtbench: {locks}: removed the lock left by Snakemake process {owners}, which is gone (killed, or the "
            "machine restarted): this run resumes the one it locked")
