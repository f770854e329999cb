"""Logging of a Snakemake job: to its log file and to stderr."""
from __future__ import annotations

import logging
import sys
import warnings


def setup(log_files) -> None:
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    handlers += [logging.FileHandler(path, mode="w") for path in log_files]
    logging.basicConfig(level=logging.INFO, handlers=handlers, force=True,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.captureWarnings(True)
    warnings.filterwarnings("ignore", category=FutureWarning, module=r"torch\.jit")
