"""Runs one benchmark job: every batch size and loader of one (format, device, precision, image size).

The job process imports the libraries once and forks a fresh child per configuration (and one for the
accuracy check, one for tuning), so no configuration's memory, caches or warm state reach another's
figures, while the ~3 s of imports are paid once per job. The child never shares CUDA with the parent:
the parent does not initialise CUDA or run any torch operation. A child that crashes or hangs becomes a
`failed` result; a JSON is written (atomically) for every configuration, whatever happens.
"""
from __future__ import annotations

import importlib
import logging
import multiprocessing
import time
import traceback
from dataclasses import dataclass, field, replace
from pathlib import Path

from fmtbench import accuracy as accuracy_check
from fmtbench import data, env, hardware, memory, results, stats, timing
from fmtbench.atomic import write_json
from fmtbench.backends._torchutil import Unavailable
from fmtbench.backends.base import LoadRequest

log = logging.getLogger(__name__)
CHILD_TIMEOUT_S = 1800


@dataclass(frozen=True)
class JobRequest:
    format: str      # the row's name: a format, or a variant of one
    backend: str     # the module in fmtbench.backends that runs it
    device: str
    precision: str
    image_size: int
    host: str
    batch_sizes: tuple[int, ...]
    loaders: tuple[str, ...]
    weights: str
    manifest: str
    reference: str
    artifact: str | None
    provenance: str | None
    measurement: timing.Settings
    noisy_iqr_ratio: float
    loader_workers: int
    threads: int | None
    options: dict
    outputs: dict = field(default_factory=dict)  # (loader, batch_size) -> JSON path

    def load_request(self) -> LoadRequest:
        return LoadRequest(precision=self.precision, device=self.device, image_size=self.image_size,
                           batch_sizes=tuple(sorted(self.batch_sizes)), state_dict=Path(self.weights),
                           artifact=Path(self.artifact) if self.artifact else None, options=self.options,
                           threads=self.threads)

    def config(self, loader: str, batch_size: int) -> results.Config:
        return results.Config(format=self.format, precision=self.precision, device=self.device, loader=loader,
                              image_size=self.image_size, batch_size=batch_size, host=self.host)


@dataclass
class Outcome:
    status: str
    reason: str | None = None
    value: dict | None = None


# --- child side --------------------------------------------------------------------------------------

def _classify(err: BaseException) -> str:
    if isinstance(err, Unavailable):
        return "unavailable"
    text = f"{type(err).__name__} {err}".lower()
    if "outofmemory" in text or "out of memory" in text or "failed to allocate memory" in text:
        return "oom"
    return "failed"


def _child(conn, function, args) -> None:
    try:
        outcome = Outcome("ok", value=function(*args))
    except Exception as err:  # noqa: BLE001 - every failure is reported to the parent as data
        log.error("%s failed:\n%s", function.__name__, traceback.format_exc())
        outcome = Outcome(_classify(err), f"{type(err).__name__}: {err}"[:2000])
    conn.send(outcome)
    conn.close()


def run_isolated(function, *args, timeout: float = CHILD_TIMEOUT_S) -> Outcome:
    """`function(*args)` in a forked child; its return value (picklable) or its failure as an Outcome."""
    context = multiprocessing.get_context("fork")
    receiver, sender = context.Pipe(duplex=False)
    process = context.Process(target=_child, args=(sender, function, args))
    process.start()
    sender.close()
    try:
        if receiver.poll(timeout):
            outcome = receiver.recv()
        else:
            outcome = Outcome("failed", f"timed out after {timeout:.0f} s")
    except EOFError:
        outcome = None
    process.join(5 if outcome else None)
    if process.is_alive():
        process.kill()
        process.join()
    if outcome is None:
        outcome = Outcome("failed", f"the measuring process died (exit code {process.exitcode})")
    return outcome


def _init_device(job: JobRequest) -> None:
    import torch
    if job.threads:
        torch.set_num_threads(job.threads)
    if job.device == "cuda":
        if not torch.cuda.is_available():
            raise Unavailable("CUDA is not available to torch on this machine")
        torch.cuda.init()
        torch.zeros(1, device="cuda")  # the context exists before the baseline is taken


def _backend(job: JobRequest):
    return importlib.import_module(f"fmtbench.backends.{job.backend}")


def tune_child(job: JobRequest) -> dict:
    _init_device(job)
    return _backend(job).tune(job.load_request())


def accuracy_child(job: JobRequest) -> dict:
    import torch
    _init_device(job)
    reference = torch.load(job.reference, map_location="cpu", weights_only=False)
    session = _backend(job).load(job.load_request())
    inputs, _ = data.fixed_batch(reference["images"], job.image_size, len(reference["images"]))
    chunk = min(job.batch_sizes)
    logits = []
    for start in range(0, len(inputs), chunk):
        piece = inputs[start:start + chunk].to(job.device)
        logits.append(session.logits(session.run(session.prepare(piece))))
    result = accuracy_check.compare(torch.cat(logits).numpy(), reference["logits"].numpy())
    return {"reference": "PyTorch fp32 eager, CPU", "batch_size": chunk, **result}


def _iteration(job: JobRequest, session, loader: str, batch_size: int, clock, waits: list):
    """One timed step: for the real loader, fetch and prepare the next batch, then time the model."""
    if loader == "dummy":
        prepared = session.prepare(data.dummy_batch(batch_size, job.image_size, job.device))
        return lambda: clock.time(lambda: session.run(prepared)), None
    paths = data.image_paths(job.manifest)
    if loader == "real_gpu_decode":
        batches = data.endless(data.bytes_loader(paths, batch_size, job.loader_workers))

        def decoded():
            images = data.decode_on_gpu(next(batches), job.image_size, job.device)
            import torch
            torch.cuda.synchronize()  # nvJPEG and the resize run asynchronously: count them as data wait
            return images
    else:
        batches = data.endless(data.real_loader(paths, job.image_size, batch_size, job.loader_workers,
                                                pin_memory=job.device == "cuda"))

        def decoded():
            return next(batches)

    def step() -> float:
        start = time.perf_counter()
        images = decoded()
        waits.append(time.perf_counter() - start)
        prepared = session.prepare(data.normalise(images, job.device))
        return clock.time(lambda: session.run(prepared))
    return step, batches


def measure_child(job: JobRequest, loader: str, batch_size: int) -> dict:
    _init_device(job)
    tracker = memory.tracker_for(job.device).start()
    load_start = time.perf_counter()
    session = _backend(job).load(job.load_request())
    load_seconds = time.perf_counter() - load_start
    clock = timing.clock_for(job.device)
    waits: list[float] = []
    step, batches = _iteration(job, session, loader, batch_size, clock, waits)
    measurement = timing.measure(step, job.measurement)
    used = tracker.stop()
    del batches  # stops DataLoader workers before the process reports
    summary = stats.summarize(measurement.times, job.noisy_iqr_ratio)
    summary.update(truncated=measurement.truncated, warmup_iters=measurement.warmup_iters,
                   warmup_seconds=measurement.warmup_seconds, timed_seconds=measurement.timed_seconds,
                   clock=clock.name)
    timed_waits = waits[measurement.warmup_iters:]
    throughput = {
        "model_fps": batch_size / (summary["median"] / 1e3),
        "end_to_end_fps": (batch_size * len(measurement.times) / measurement.timed_seconds
                           if loader != "dummy" else None),
        "data_wait_ms_median": float(stats.summarize(timed_waits)["median"]) if timed_waits else None,
    }
    backend_info = {**session.info, "load_seconds": round(load_seconds, 3),
                    "loader_workers": job.loader_workers if loader != "dummy" else None}
    return {"timing": summary, "throughput": throughput, "memory": used, "backend": backend_info,
            "environment": env.capture(job.device, cuda_ready=job.device == "cuda")}


# --- parent side -------------------------------------------------------------------------------------

def static_unavailability(job: JobRequest) -> tuple[str, str] | None:
    """Reasons known without importing torch: no GPU, or an export that is a marker."""
    if job.device == "cuda" and hardware.gpu_fingerprint() == hardware.NO_CUDA:
        return "unavailable", "no CUDA device on this machine (no NVIDIA GPU visible)"
    if job.provenance:
        from fmtbench.export import load_provenance
        provenance = load_provenance(job.provenance)
        if provenance["status"] != "ok":
            return provenance["status"], f"export {provenance['status']}: {provenance['reason']}"
    return None


def _artifact(job: JobRequest) -> dict | None:
    """The export this job ran, as its provenance recorded it (hashed once, at export time)."""
    if not job.provenance:
        return None
    from fmtbench.export import load_provenance
    provenance = load_provenance(job.provenance)
    return {"path": job.artifact, "sha256": provenance["sha256"]} if provenance["status"] == "ok" else None


def _write(job: JobRequest, loader: str, batch_size: int, outcome: Outcome, accuracy: dict | None,
           extra_backend: dict, environment: dict, artifact: dict | None) -> dict:
    value = outcome.value or {}
    record = results.record(
        job.config(loader, batch_size), outcome.status, outcome.reason,
        timing=value.get("timing"), throughput=value.get("throughput"), memory=value.get("memory"),
        accuracy=accuracy if outcome.status == "ok" else None,
        environment=value.get("environment") or environment,
        artifact=artifact, backend={**extra_backend, **value.get("backend", {})})
    results.validate(record)
    write_json(job.outputs[(loader, batch_size)], record)
    return record


def _preload(job: JobRequest) -> None:
    """Imports only (no CUDA, no torch ops): the forked children inherit them."""
    import torch  # noqa: F401
    import torchvision  # noqa: F401
    if job.backend == "onnx":
        import onnxruntime  # noqa: F401


def _config_timeout(job: JobRequest) -> float:
    """Generous for load and warm-up, bounded so that a hang becomes a `failed` row, not a stuck run."""
    settings = job.measurement
    return 300 + 3 * (settings.warmup_seconds + settings.max_seconds)


def run_job(job: JobRequest) -> list[dict]:
    configs = [(loader, batch) for batch in sorted(job.batch_sizes) for loader in job.loaders]
    artifact = _artifact(job)

    def write_all(outcome: Outcome, environment: dict) -> list[dict]:
        """Every configuration of the job gets the same outcome: it could not be measured."""
        return [_write(job, loader, batch, outcome, None, {}, environment, artifact) for loader, batch in configs]

    known = static_unavailability(job)
    if known:
        return write_all(Outcome(*known), env.capture(job.device))

    _preload(job)
    environment = env.capture(job.device)
    extra: dict = {}
    if hasattr(_backend(job), "tune"):
        tuned = run_isolated(tune_child, job)
        if tuned.status != "ok":
            return write_all(tuned, environment)
        job = replace(job, options={**job.options, **tuned.value})
        extra["tuned"] = tuned.value
    checked = run_isolated(accuracy_child, job)
    if checked.status == "unavailable":
        return write_all(checked, environment)
    if checked.status != "ok":
        extra["accuracy_error"] = f"{checked.status}: {checked.reason}"
    written = []
    for loader, batch in configs:
        log.info("measuring %s %s %s %s loader=%s batch=%d", job.format, job.device, job.precision,
                 job.image_size, loader, batch)
        outcome = run_isolated(measure_child, job, loader, batch, timeout=_config_timeout(job))
        record = _write(job, loader, batch, outcome, checked.value, extra, environment, artifact)
        log.info("-> %s %s", record["status"], record["reason"] or
                 f"median {record['timing']['median']:.2f} ms, memory {record['memory']['allocated_mb']:.1f} MB")
        written.append(record)
    return written
