"""How Snakemake was asked to run this workflow, as the Snakefile needs it while Snakemake parses it: whether it is a
dry run (`-n`), the files its plan must remake, and whether the interpreter it starts jobs with can be started.

Snakemake parses the Snakefile before it tells the workflow what it will do with it (`workflow.dryrun` is False until
execution starts) and before the workflow has its DAG settings (given to it right after parsing, by the DAGApi that
is parsing it). Both are read where Snakemake holds them at that moment, on the call stack: the command line its CLI
parsed (`args_to_api`'s `args`) and the DAG settings of the DAGApi being made. Where they are not there (Snakemake
driven through its Python API some other way), a dry run is read from the command line, and nothing is forced.
Light (no torch): the Snakefile imports it on every invocation.
"""
from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator
from types import FrameType

DRY_RUN_FLAGS = ("-n", "--dry-run", "--dryrun")


def _frames() -> Iterator[FrameType]:
    frame = sys._getframe(1)
    while frame is not None:
        yield frame
        frame = frame.f_back


def dry_run() -> bool:
    """Whether Snakemake was asked for a dry run."""
    for frame in _frames():
        args = frame.f_locals.get("args")
        if frame.f_code.co_name == "args_to_api" and hasattr(args, "dryrun"):
            return bool(args.dryrun)
    return any(arg in DRY_RUN_FLAGS for arg in sys.argv[1:])


def force(files: Iterable[str]) -> bool:
    """Plans the jobs that make `files` as if they were missing, with what depends on them (`--forcerun FILE...`):
    what a dry run shows for files a real run sets aside. False where the DAG settings are out of reach."""
    for frame in _frames():
        owner = frame.f_locals.get("self")
        if type(owner).__name__ == "DAGApi" and hasattr(owner, "dag_settings"):
            owner.dag_settings.forcerun = frozenset(owner.dag_settings.forcerun) | set(files)
            return True
    return False


def interpreter_problem(executable: str = sys.executable) -> str | None:
    """Why Snakemake cannot start this workflow's jobs with this Python, or None: Snakemake 9 runs a `script:` job as
    `<python> <script>` through bash with the interpreter's path unquoted, so a path with a space (or another
    character the shell splits or expands) fails every job with exit status 126 or 127."""
    import shlex
    if shlex.quote(executable) == executable:
        return None
    return (f"fmtbench: the Python that runs this study, {executable!r}, is under a path with a space or another "
            "character the shell splits: Snakemake starts every job as `<python> <script>` without quoting that path "
            "(each job would fail with exit status 126). Clone or move the checkout to a path without one (e.g. "
            "~/fmtbench) and make its .venv there again (python3 -m venv .venv && .venv/bin/pip install -q -e .)")
