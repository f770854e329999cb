"""A benchmark job: every image size of one (format, device, precision), one after the other in the one job
process (its imports made once). Per image size (a `Request`): the export checked, the request prepared (what
cannot run here said for every row, the backend's once-per-job settings tuned), its measuring processes
scheduled, its rows assembled from their readings and written (atomically, validated) — a JSON for every
configuration, whatever happens."""
from __future__ import annotations

import logging
import time

from fmtbench.measure import artifact, assemble, output, ready, schedule
from fmtbench.measure.request import Request

log = logging.getLogger(__name__)


def run_jobs(requests: list[Request]) -> list[dict]:
    """A Snakemake job's image sizes one after the other."""
    rows = []
    for request in requests:
        started = time.perf_counter()
        rows += run_job(request)
        log.info("%s: %d rows in %.1f s", request.describe(), len(request.outputs), time.perf_counter() - started)
    return rows


def run_job(request: Request) -> list[dict]:
    export = artifact.check(request)
    prepared = ready.prepare(request, export)
    if prepared.failure is not None:
        log.info("%s: %s: %s", request.describe(), prepared.failure.status, prepared.failure.reason)
    measured = schedule.measure(prepared)
    return output.write(request, assemble.rows(prepared, measured, export.artifact))
