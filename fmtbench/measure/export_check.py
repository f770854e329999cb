"""The export a request runs: its provenance (what the export stage wrote about it) and its bytes, checked against
the hash taken at export time before anything is measured with it."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from fmtbench import results
from fmtbench.atomic import read_json, sha256_artifact
from fmtbench.measure.request import Request
from fmtbench.workflow import integrity


class DamagedExport(RuntimeError):
    """The export on disk is not the one its provenance hashed."""


@dataclass(frozen=True)
class Export:
    written: dict | None                 # what the export stage wrote about it (None for formats without one)
    artifact: results.ExportRecord | None    # as every row records it (None where there is no usable export)


def check(request: Request) -> Export:
    """The request's export, after checking a file export's bytes: one that does not hash as at export time (a
    directory is a compiler cache its loads add to) is set aside, and the job stops before writing a row: the next
    plain run rebuilds it and remeasures."""
    written = read_json(request.provenance) if request.provenance else None
    if not written or written["status"] != "ok":
        return Export(written, None)
    if Path(request.artifact).is_file():
        actual = sha256_artifact(request.artifact)
        if actual != written["sha256"]:
            integrity.set_aside_export(request.artifact, "sha256 differs from the export's")
            raise DamagedExport(
                f"{request.artifact}: sha256 {actual[:12]}… is not the export's {written['sha256'][:12]}… (damaged "
                f"after export); set aside as {request.artifact}{integrity.DAMAGED}. Run the same command again: it "
                "rebuilds the export and remeasures its rows.")
    return Export(written, results.ExportRecord(path=request.artifact, sha256=written["sha256"]))
