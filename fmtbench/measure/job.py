"""A benchmark job: every image size of one (format, device, precision) in the one job process (its imports made
once). Per image size (a `Request`): the export checked, the request prepared (what cannot run here said for every
row, the backend's once-per-job settings tuned); then the measuring processes of every size, round by round across
the sizes (a row's processes spread over the job); then each size's rows assembled from their readings and written
(atomically, validated) — a JSON for every configuration, whatever happens."""
from __future__ import annotations

import gc
import logging
import time

import psutil

from fmtbench.measure import assemble, export_check, preparation, row_files, schedule
from fmtbench.measure.request import Request

log = logging.getLogger(__name__)


def run(requests: list[Request]) -> list[dict]:
    """A Snakemake job's image sizes: each prepared (its export checked, the backend tuned), then their measuring
    processes round by round across the sizes (schedule.measure_together), then each size's rows written."""
    started = time.perf_counter()
    log.info("job process: %.1f s from its start to its first step (the interpreter, Snakemake's preamble, imports)",
             time.time() - psutil.Process().create_time())
    exports, prepared = [], []
    for request in requests:
        steps = preparation.Steps()
        exports.append(export_check.check(request))
        steps.done("export checked")
        prepared.append(preparation.prepare(request, exports[-1], steps))
        log.info("%s: prepared in %s", request.describe(), steps.text())
    log.info("%d image size(s): exports checked and prepared in %.1f s", len(requests), time.perf_counter() - started)
    if requests[0].measurement.switches.freeze_after_load:
        gc.collect()
        gc.freeze()  # the imports: this process's collections (its monitors' threads wait through them) skip them
    for item in prepared:
        if item.failure is not None:
            log.info("%s: %s: %s", item.request.describe(), item.failure.status, item.failure.reason)
    rows = []
    for item, measured, export in zip(prepared, schedule.measure_together(prepared), exports):
        rows += row_files.write(item.request, assemble.rows(item, measured, export.artifact))
    log.info("%d image size(s), %d rows in %.1f s", len(requests), len(rows), time.perf_counter() - started)
    return rows


def run_request(request: Request) -> list[dict]:
    """One image size alone."""
    return run([request])
