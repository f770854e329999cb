"""Writing a request's rows: each validated against the result schema, its attempt counted (a transient failure
is remeasured by the next plain run, a bounded number of times), written atomically."""
from __future__ import annotations

from pathlib import Path

from fmtbench import model, results
from fmtbench.atomic import read_json, write_json
from fmtbench.measure.request import Request
from fmtbench.workflow import integrity


def write(request: Request, rows: list[results.Row]) -> list[dict]:
    """Each row to its JSON file (the request's `outputs`), with the weights every row records."""
    weights = (results.Weights(**model.weights_record(read_json(request.model_provenance)))
               if request.model_provenance else None)
    written = []
    for row in rows:
        path = request.outputs[(row.config.loader, row.config.batch_size)]
        document = results.with_attempt(row, integrity.previous_attempts(path) + 1, weights).to_json()
        results.validate(document)
        write_json(path, document)
        Path(str(path) + integrity.PREVIOUS).unlink(missing_ok=True)
        written.append(document)
    return written
