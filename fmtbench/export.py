"""The export stage: one artifact per format and precision (and device / image size where needed).

The format's probe runs first, here, in a second: a format that cannot run (library missing, no GPU) gets
its outputs at once, without starting a compiler or holding the GPU. Otherwise the export runs in a fresh
interpreter (isolation.run_interpreter) holding the job's GPU where it needs one, so a compiler that
crashes becomes a `failed` export naming the step it died in. Either way both outputs exist: the artifact
(or a one-line marker) and the provenance that says what happened, so the benchmarks record
`unavailable` / `failed` and the report lists them; the run goes on.
"""
from __future__ import annotations

import datetime as dt
import logging
import shutil
import time
from pathlib import Path

from fmtbench import backends, isolation, model, versions
from fmtbench.atomic import atomic_path, sha256_artifact, write_json
from fmtbench.backends.base import ExportRequest
from fmtbench.workflow import gpus, hardware

log = logging.getLogger(__name__)
MARKER = "FMTBENCH-NO-ARTIFACT"
EXPORT_TIMEOUT_S = 3600


def _clear(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path)
    elif path.exists():
        path.unlink()


def _write_marker(path: Path, directory: bool, text: str) -> None:
    _clear(path)
    if directory:
        path.mkdir(parents=True)
        (path / MARKER).write_text(text)
    else:
        with atomic_path(path) as tmp:
            tmp.write_text(f"{MARKER} {text}")


def export_child(format_name: str, request: ExportRequest, out: str, threads: int | None) -> tuple[dict, float]:
    """In the fresh interpreter: build the model and export it; returns the details and the seconds the
    export itself took (not the interpreter's start nor torch's import)."""
    import torch
    if threads:
        torch.set_num_threads(threads)
    backend = backends.get(format_name)
    isolation.mark("build the model")
    module = model.build(request.weights)
    isolation.mark("export")
    start = time.perf_counter()
    details = backend.export(module, request, Path(out))
    return details, time.perf_counter() - start


def run(format_name: str, precision: str, device: str, size: str, weights_path, batch_sizes, options: dict,
        artifact_path, provenance_path, threads: int | None = None) -> dict:
    backend = backends.get(format_name)
    artifact_path = Path(artifact_path)
    directory = backend.SPEC.artifact.kind == "directory"
    request = ExportRequest(precision=precision, device="cpu" if device == "any" else device,
                            image_size=None if size == "any" else int(size),
                            batch_sizes=tuple(sorted(batch_sizes)), options=options, weights=Path(weights_path))
    provenance = {
        "format": format_name, "precision": precision, "device": device, "image_size": request.image_size,
        "libraries": versions.versions(backend.SPEC.libraries),
        "gpu": hardware.gpu_fingerprint() if request.device == "cuda" else None,
        "exported_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }
    where = f"export {format_name} {precision} {device} {size}"
    reason = backend.probe(request.device)
    if request.device == "cuda" and hardware.gpu_fingerprint() == hardware.NO_CUDA:
        reason = "no CUDA device on this machine (no NVIDIA GPU visible)"
    if reason:
        log.info("%s: unavailable: %s", where, reason)
        outcome = isolation.Outcome("unavailable", reason)
    else:
        _clear(artifact_path)
        # Some writers insist on the extension (AOTInductor wants ".pt2"): the temporary name keeps it.
        target = artifact_path if directory else artifact_path.with_name(
            f".{artifact_path.stem}.part{artifact_path.suffix}")
        try:
            with gpus.claim_for(request.device):
                outcome = isolation.run_interpreter("fmtbench.export:export_child", format_name, request,
                                                    str(target), threads, timeout=EXPORT_TIMEOUT_S, spec=backend.SPEC)
        except BaseException:  # Ctrl-C, SIGTERM: the child is gone (run_interpreter stopped it); so is its .part
            if not directory:
                _clear(target)
            raise
        if outcome.status == "ok" and not directory:
            target.replace(artifact_path)
        elif not directory:
            _clear(target)
    if outcome.status == "ok":
        details, seconds = outcome.value
        provenance.update(status="ok", reason=None, export_seconds=round(seconds, 3),
                          sha256=sha256_artifact(artifact_path), details=details,
                          size=artifact_path.stat().st_size if artifact_path.is_file() else None)
    else:
        if outcome.status != "unavailable":
            log.error("%s %s: %s", where, outcome.status, outcome.reason)
        _write_marker(artifact_path, directory, f"{outcome.status}: {outcome.reason}\n")
        provenance.update(status=outcome.status, reason=(outcome.reason or "")[:2000], sha256=None, details={})
    write_json(provenance_path, provenance)
    return provenance
