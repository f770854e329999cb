"""Logging of a Snakemake job: INFO and above to stderr, fmtbench's DEBUG too (tracebacks) to its log file."""
from __future__ import annotations

import logging
import os
import re
import signal
import sys
import warnings
from collections.abc import Callable

INTERRUPTED = 130  # a shell's exit status for a process ended by SIGINT
ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def one_line(err: BaseException, limit: int = 200) -> str:
    """An exception's first non-empty line, without terminal colours, cut to `limit` characters: what a message
    quotes of a library's error."""
    text = ANSI_ESCAPE.sub("", str(err))
    line = next((part.strip() for part in text.splitlines() if part.strip()), type(err).__name__)
    return line if len(line) <= limit else line[:limit - 1] + "…"


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


def _interrupted(signum, frame):
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C pressed again must not cut the clean-up short
    raise KeyboardInterrupt


def run(main: Callable[[], None], what: str, refused: tuple[type[Exception], ...] = ()) -> None:
    """A job's `main`. Ctrl-C (SIGINT to the whole process group) unwinds it once (temporary files removed, locks
    released; outputs are only ever renamed into place whole) and ends it with one calm line and exit status 130,
    not a KeyboardInterrupt traceback. Where SIGINT is ignored (a job started in the background) it stays ignored.
    An exception of a `refused` type (bad input, its message naming the culprit) ends it with that message and exit
    status 1, without a traceback."""
    if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
        signal.signal(signal.SIGINT, _interrupted)
    try:
        main()
    except refused as err:
        logging.getLogger("fmtbench").error("%s: %s", what, err)
        logging.shutdown()
        sys.exit(1)
    except KeyboardInterrupt:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        logging.getLogger("fmtbench").warning("%s interrupted (Ctrl-C): stopped, nothing half-written left; "
                                              "the same command resumes", what)
        # Out at once: the clean-up ran while the interrupt unwound `main`, and the interpreter's own shutdown
        # (torch's exit handlers) took another second, during which Snakemake, waiting for its job, crashed on the
        # user's second Ctrl-C with a traceback of its own.
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(INTERRUPTED)
