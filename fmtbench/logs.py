"""Logging of a Snakemake job: INFO and above to stderr, fmtbench's DEBUG too (tracebacks) to its log file."""
from __future__ import annotations

import logging
import sys
import warnings


def setup(log_files) -> None:
    console = logging.StreamHandler(sys.stderr)
    console.setLevel(logging.INFO)
    handlers: list[logging.Handler] = [console]
    for path in log_files:
        handler = logging.FileHandler(path, mode="w")
        handler.setLevel(logging.DEBUG)
        handlers.append(handler)
    logging.basicConfig(level=logging.INFO, handlers=handlers, force=True,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("fmtbench").setLevel(logging.DEBUG)
    logging.captureWarnings(True)
    warnings.filterwarnings("ignore", category=FutureWarning, module=r"torch\.jit")
