"""The export stage: one artifact per format and precision (and device / image size where needed).

A format that cannot be exported here (no CUDA, library missing) or whose export fails still produces
its two outputs: the artifact is a one-line marker and the provenance says why, so the benchmarks record
`unavailable` / `failed` and the report lists them; the run goes on.
"""
from __future__ import annotations

import datetime as dt
import importlib
import logging
import os
import pickle
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

from fmtbench import hardware, model, versions
from fmtbench.atomic import atomic_path, read_json, sha256_file, write_json
from fmtbench.backends.base import ExportRequest

log = logging.getLogger(__name__)
MARKER_PREFIX = b"FMTBENCH-NO-ARTIFACT"


def run(format_name: str, precision: str, device: str, size: str, weights_path, batch_sizes, options: dict,
        artifact_path, provenance_path, threads: int | None = None) -> dict:
    backend = importlib.import_module(f"fmtbench.backends.{format_name}")
    request = ExportRequest(precision=precision, device="cpu" if device == "any" else device,
                            image_size=None if size == "any" else int(size),
                            batch_sizes=tuple(sorted(batch_sizes)), options=options)
    provenance = {
        "format": format_name, "precision": precision, "device": device, "image_size": request.image_size,
        "libraries": versions.versions(backend.SPEC.libraries),
        "gpu": hardware.gpu_fingerprint() if request.device == "cuda" else None,
        "exported_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
    }
    try:
        with atomic_path(artifact_path) as tmp:
            details, seconds = _export_isolated(format_name, request, weights_path, tmp, threads)
            provenance["export_seconds"] = round(seconds, 3)
        provenance.update(status="ok", reason=None, sha256=sha256_file(artifact_path), details=details)
    except Exception as err:  # every failure becomes data; the traceback goes to the log
        status = "unavailable" if _is_unavailable(err) else "failed"
        reason = f"{type(err).__name__}: {err}"
        log.error("export %s %s %s %s %s: %s\n%s", format_name, precision, device, size, status, reason,
                  traceback.format_exc())
        with atomic_path(artifact_path) as tmp:
            tmp.write_bytes(MARKER_PREFIX + f" {status}: {reason}\n".encode())
        provenance.update(status=status, reason=reason[:2000], sha256=None, details={})
    write_json(provenance_path, provenance)
    return provenance


class ExportCrashed(RuntimeError):
    pass


def _export_child(request_path: str, result_path: str) -> None:
    """Entry point of `python -m fmtbench.export REQUEST RESULT` (pickles in, pickle out)."""
    with open(request_path, "rb") as handle:
        format_name, request, weights_path, out, threads = pickle.load(handle)
    try:
        import torch
        if threads:
            torch.set_num_threads(threads)
        backend = importlib.import_module(f"fmtbench.backends.{format_name}")
        start = time.perf_counter()  # the export itself: not the interpreter's start nor torch's import
        details = backend.export(model.build(weights_path), request, out)
        result = ("ok", (details, time.perf_counter() - start))
    except Exception as err:  # noqa: BLE001 - reported to the parent as data
        traceback.print_exc()
        result = ("unavailable" if _is_unavailable(err) else "failed", f"{type(err).__name__}: {err}"[:2000])
    with open(result_path, "wb") as handle:
        pickle.dump(result, handle)


def _export_isolated(format_name, request, weights_path, out, threads) -> tuple[dict, float]:
    """The compile runs in a fresh interpreter: a compiler that crashes (the AOTInductor max-autotune
    compile died of SIGSEGV on the H100) becomes a `failed` export instead of killing the workflow.
    Returns the backend's details and the seconds the export took inside that process."""
    from fmtbench.backends._torchutil import Unavailable
    with tempfile.TemporaryDirectory() as scratch:
        request_path, result_path = Path(scratch, "request.pkl"), Path(scratch, "result.pkl")
        with open(request_path, "wb") as handle:
            pickle.dump((format_name, request, str(weights_path), str(out), threads), handle)
        package_root = str(Path(__file__).resolve().parent.parent)
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [package_root, os.environ.get("PYTHONPATH")]))}
        completed = subprocess.run([sys.executable, "-m", "fmtbench.export", str(request_path), str(result_path)],
                                   env=env)
        if not result_path.exists():
            raise ExportCrashed(f"the export process died (exit code {completed.returncode})")
        with open(result_path, "rb") as handle:
            status, value = pickle.load(handle)
    if status == "unavailable":
        raise Unavailable(value.removeprefix("Unavailable: "))
    if status != "ok":
        raise ExportCrashed(value)
    return value


def _is_unavailable(err: Exception) -> bool:
    from fmtbench.backends._torchutil import Unavailable
    return isinstance(err, (Unavailable, ImportError))


def load_provenance(provenance_path) -> dict:
    return read_json(Path(provenance_path))


if __name__ == "__main__":
    _export_child(sys.argv[1], sys.argv[2])
