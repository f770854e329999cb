"""How Snakemake was asked to run this workflow, as the Snakefile needs it while Snakemake parses it: whether the
interpreter it starts jobs with can be started.
Light (no torch): the Snakefile imports it on every invocation.
"""
from __future__ import annotations

import sys


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
