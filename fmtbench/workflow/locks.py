"""What a Snakemake process that was killed leaves in .snakemake/: its lock of the directory, its backups of outputs.

Snakemake 9.27 locks a directory with files under .snakemake/locks/ that list what a run reads and writes, and
removes them when it ends. Killed (SIGKILL, a power loss), it leaves them, and the next run stops ("Directory
cannot be locked ... It can be removed with the --unlock argument"); the files do not say whose they are, and
Snakemake offers no check of their owner. So before Snakemake locks the directory (the Snakefile, while it is
parsed), `expect` writes which process is about to (host, boot, pid and start time); once Snakemake has locked it
for a run (the Snakefile's `onstart`), `claim` adds which lock files were there. Before the next run plans,
`release_stale` removes the lock files whose every recorded holder is gone from this host (its process ended, or
the machine rebooted since) and says so in one line; a lock written after a gone process said it was about to lock,
and claimed by no one, is that process's (killed between locking and `onstart`, while Snakemake built its plan). A
lock of a live run, of another host (a shared file system) or that no holder recorded is left to Snakemake and its
message.

Outputs marked update() (the report's) are copied to .snakemake/backups/ before their job runs, restored from there
if it fails and the copy removed if it succeeds. Killed meanwhile, Snakemake leaves the copy, and every later run
stopped on it (FileExistsError, copying the outputs onto it again). `restore_backups` does what the killed
Snakemake would have done for a failed job, with Snakemake's own code, before a plan is made: the previous outputs
are put back and the copy removed (the job reruns: it was not complete).
"""
from __future__ import annotations

import datetime as dt
import json
import os
import re
import socket
import time
from collections.abc import Iterable
from pathlib import Path

from fmtbench.lifeline import start_time

LOCKS = ".snakemake/locks"
LOCK_FILE = re.compile(r"\d+\.(input|output)\.lock")  # Snakemake's own names (persistence/file.py)
HOLDER = "fmtbench-holder-{pid}.json"
SNAKEMAKE_DIR = ".snakemake"
CLOCK_SLACK_NS = 1_000_000_000  # file times are the kernel's coarse clock: a lock may read older than it is


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


def _record(locks: Path, pending: bool) -> None:
    pid = os.getpid()
    record = {"host": socket.gethostname(), "boot": _boot(), "pid": pid, "started": start_time(pid),
              "locks": {} if pending else _lock_files(locks)}
    if pending:
        record["since"] = time.time_ns() - CLOCK_SLACK_NS
    elif not record["locks"]:
        return
    locks.mkdir(parents=True, exist_ok=True)
    (locks / HOLDER.format(pid=pid)).write_text(json.dumps(record))


def expect(locks: str | os.PathLike = LOCKS) -> None:
    """In Snakemake's main process before it locks the directory: a lock written from now on and claimed by no one
    is this process's, once it is gone."""
    _record(Path(locks), pending=True)


def claim(locks: str | os.PathLike = LOCKS) -> None:
    """In Snakemake's main process once it holds the lock: this process holds the lock files there now."""
    _record(Path(locks), pending=False)


def _gone(holder: dict) -> bool:
    """Whether a holder is known to have ended: same host, and another boot or no process of that pid and start."""
    if holder.get("host") != socket.gethostname():
        return False
    return holder.get("boot") != _boot() or start_time(holder["pid"]) != holder.get("started")


def _claimants(holders: dict[Path, dict], name: str, mtime: int) -> list[Path]:
    """The holders a lock file is recorded as theirs by; where none claims it, those that were about to lock when it
    was written."""
    claimed = [path for path, holder in holders.items() if holder["locks"].get(name) == mtime]
    return claimed or [path for path, holder in holders.items()
                       if not holder["locks"] and holder.get("since") is not None and holder["since"] <= mtime]


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
    claimants = {name: _claimants(holders, name, mtime) for name, mtime in _lock_files(locks).items()}
    stale = {name: owners for name, owners in claimants.items() if owners and set(owners) <= gone}
    for name in stale:
        (locks / name).unlink(missing_ok=True)
    for path in gone:
        path.unlink(missing_ok=True)
    if not stale:
        return None
    owners = ", ".join(f"{holders[path]['pid']} (started "
                       f"{dt.datetime.fromtimestamp(holders[path]['started'] or 0).isoformat(' ', 'seconds')})"
                       for path in sorted(set().union(*stale.values())))
    return (f"fmtbench: {locks}: removed the lock left by Snakemake process {owners}, which is gone (killed, or the "
            "machine restarted): this run resumes the one it locked")


def restore_backups(outputs: Iterable[str], workdir: str | os.PathLike = ".") -> list[str]:
    """The update() outputs whose backup a killed Snakemake left, restored from it (the backup removed), where no
    Snakemake holds the directory's lock (a live run's backups are its own); returns the outputs restored."""
    from snakemake.persistence import FileBackupMixin

    class Backups(FileBackupMixin):
        path = Path(workdir, SNAKEMAKE_DIR)

    backups = Backups()
    if not backups._backup_path.is_dir() or _lock_files(Path(workdir, LOCKS)):
        return []
    restored = []
    for output in dict.fromkeys(map(str, outputs)):
        if backups._get_backup_path(Path(output)).exists() and backups.restore_output(Path(output)):
            restored.append(output)
    return restored
