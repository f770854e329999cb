"""Writes that never leave a half-written file behind (an interrupted job leaves the old file or none)."""
from __future__ import annotations

import errno
import json
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path


def _new_file_mode() -> int:
    """The mode open() would give a new file (0666 less the umask); mkstemp's 0600 would hide results from
    the group (a cluster's shared workspace) and from other users."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            umask = next(int(line.split()[1], 8) for line in status if line.startswith("Umask:"))
    except (OSError, StopIteration):
        umask = 0o022
    return 0o666 & ~umask


@contextmanager
def atomic_path(path: str | os.PathLike):
    """Yields a temporary path beside `path`; renames it onto `path` only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # The temporary name keeps the extension: some writers insist on it (AOTInductor wants ".pt2").
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=f".part{path.suffix}")
    os.close(fd)
    try:
        yield Path(tmp)
        if os.path.isfile(tmp):
            os.chmod(tmp, _new_file_mode())
        os.replace(tmp, path)
    except OSError as err:
        if err.errno in (errno.ENOSPC, errno.EDQUOT):  # the OS's message names no file: name the one we wrote
            raise OSError(err.errno, f"{os.strerror(err.errno)} while writing {path} (nothing was replaced; free "
                                     f"space on {path.parent} and run the same command again)") from err
        raise
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


@contextmanager
def replaced_together(*targets: str | os.PathLike):
    """Yields a temporary path for each target (files or directories of one directory), in a staging directory
    beside them; only if the block succeeds does each replace its target whole, in the order given, so a reader
    and a failed writer see the previous set until the new one is complete."""
    targets = [Path(target) for target in targets]
    parent = targets[0].parent
    parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=parent, prefix=".staging."))
    try:
        new = [staging / target.relative_to(parent) for target in targets]
        yield new
        for fresh, target in zip(new, targets, strict=True):
            if not fresh.exists():
                continue
            if target.is_dir() and not target.is_symlink():
                target.replace(staging / f".previous.{target.name}")  # a directory cannot be replaced in one step
            os.replace(fresh, target)
    finally:
        import shutil
        shutil.rmtree(staging, ignore_errors=True)


def write_json(path: str | os.PathLike, data) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2, sort_keys=True, default=str) + "\n", encoding="utf-8")


def read_json(path: str | os.PathLike):
    return json.loads(Path(path).read_text(encoding="utf-8"))


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    import hashlib
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def sha256_artifact(path: str | os.PathLike) -> str:
    """A file's sha256, or for a directory the sha256 of its files' relative paths and sha256s."""
    path = Path(path)
    if path.is_file():
        return sha256_file(path)
    import hashlib
    digest = hashlib.sha256()
    for item in sorted(p for p in path.rglob("*") if p.is_file()):
        digest.update(f"{item.relative_to(path).as_posix()}:{sha256_file(item)}\n".encode())
    return digest.hexdigest()
