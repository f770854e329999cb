"""Runs one benchmark job: every batch size and loader of one (format, device, precision, image size).

The job process imports the format's libraries once and forks a fresh child per measurement (and one for
tuning), so no configuration's memory, caches or warm state reach another's figures, while the imports are
paid once per job. Each configuration is measured in `repeats` independent processes, in rounds: every
configuration once, then every configuration again starting further into the list, ... so the processes of one
configuration are spread over the job rather than back to back (a slow spell of the machine does not hit
one row thrice). The parent never initialises CUDA: it only watches the GPU through NVML while a child
measures (gpus.DeviceMonitor). A child that crashes or hangs becomes a `failed` result; a JSON is written
(atomically) for every configuration, whatever happens.
"""
from __future__ import annotations

import importlib
import logging
import os
from dataclasses import dataclass, field, replace
from pathlib import Path

from fmtbench import accuracy as accuracy_check
from fmtbench import backends, data, env, gpus, hardware, integrity, isolation, memory, model, results, timing
from fmtbench.atomic import read_json, sha256_artifact, write_json
from fmtbench.backends.base import LoadRequest, Unavailable
from fmtbench.contention import Watch, row_summary
from fmtbench.stats import Timing

log = logging.getLogger(__name__)


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
    manifest: str | None
    reference: str | None
    artifact: str | None
    provenance: str | None
    measurement: timing.Settings
    noisy_iqr_ratio: float
    unstable_spread: float
    loader_workers: int
    threads: int | None
    options: dict
    outputs: dict = field(default_factory=dict)  # (loader, batch_size) -> JSON path
    model_provenance: str | None = None  # where the weights came from: written into every row

    def load_request(self) -> LoadRequest:
        return LoadRequest(precision=self.precision, device=self.device, image_size=self.image_size,
                           batch_sizes=tuple(sorted(self.batch_sizes)), state_dict=Path(self.weights),
                           artifact=Path(self.artifact) if self.artifact else None, options=self.options,
                           threads=self.threads)

    def config(self, loader: str, batch_size: int) -> results.Config:
        return results.Config(format=self.format, precision=self.precision, device=self.device, loader=loader,
                              image_size=self.image_size, batch_size=batch_size, host=self.host)


# --- child side --------------------------------------------------------------------------------------

def _init_device(job: JobRequest) -> dict:
    """Threads and the CUDA context; returns what identifies the GPU to the parent's NVML."""
    import torch
    if job.threads:
        torch.set_num_threads(job.threads)
    if job.device != "cuda":
        return {}
    if not torch.cuda.is_available():
        raise Unavailable("CUDA is not available to torch on this machine")
    torch.cuda.init()
    torch.zeros(1, device="cuda")  # the context exists before the baseline is taken
    properties = torch.cuda.get_device_properties(0)
    identity = {"uuid": str(getattr(properties, "uuid", "") or "")}
    if hasattr(properties, "pci_bus_id"):
        identity["pci_bus_id"] = (f"{properties.pci_domain_id:08x}:{properties.pci_bus_id:02x}:"
                                  f"{properties.pci_device_id:02x}.0")
    return identity


def _synchronize(device: str) -> None:
    if device == "cuda":
        import torch
        torch.cuda.synchronize()


def tune_child(job: JobRequest) -> dict:
    _init_device(job)
    return backends.get(job.backend).tune(job.load_request())


def _accuracy(job: JobRequest, session, batch_size: int) -> dict:
    """The session's logits on the fixed images, in batches of the configuration's size (the last one padded
    with the first images), against the reference (PyTorch fp32 eager on the CPU)."""
    import torch
    reference = torch.load(job.reference, map_location="cpu", weights_only=False)
    images = reference["images"]
    inputs, _ = data.fixed_batch(images, job.image_size, len(images))
    fmt = backends.get(job.backend).input_format(job.load_request())
    logits = []
    for start in range(0, len(inputs), batch_size):
        piece = inputs[start:start + batch_size]
        count = len(piece)
        if count < batch_size:  # same shape as the timed batches (CUDA graphs, static engines)
            piece = torch.cat([piece, inputs[torch.arange(batch_size - count) % len(inputs)]])
        piece = data.in_format(piece, fmt, job.device)
        logits.append(session.logits(session.run(session.prepare(piece)))[:count])
    result = accuracy_check.compare(torch.cat(logits).numpy(), reference["logits"].numpy(), job.precision,
                                    job.options.get("fp32_math", "strict"))
    return {"reference": "PyTorch fp32 eager, CPU", "batch_size": batch_size, **result}


def measure_child(job: JobRequest, loader_name: str, batch_size: int, with_accuracy: bool) -> dict:
    """One measurement of one configuration, in a process of its own. Marks its stages for the parent."""
    isolation.mark("started")
    backend = backends.get(job.backend)
    loader = data.loader(loader_name)
    request = job.load_request()
    identity = _init_device(job)
    source = loader.open(data.SourceRequest(job.device, job.image_size, batch_size, job.loader_workers,
                                            job.manifest, backend.input_format(request)))
    monitored = isolation.mark("baseline", **identity).get("device_memory", False)
    if job.device == "cpu":
        tracker = memory.RssTracker().start()
    else:
        import torch
        torch.cuda.reset_peak_memory_stats()
        tracker = None if monitored else memory.CudaTracker().start()
    session = backend.load(request)
    _synchronize(job.device)
    if tracker:
        tracker.stage("load")
    isolation.mark("loaded")

    clock = timing.clock_for(job.device)
    first_batch = session.prepare(source.next())
    first_run_ms = clock.time(lambda: session.run(first_batch)) * 1e3  # lazy init, autotuning, compilation
    if tracker:
        tracker.stage("first_run")
    isolation.mark("first_run")

    def step() -> float:
        prepared = session.prepare(source.next())
        return clock.time(lambda: session.run(prepared))

    watch = Watch(job.device, hardware.usable_cores(), os.getpid())  # what else used the machine

    def timing_starts() -> None:
        watch.start()
        source.start_timing()
        isolation.mark("timing_start")

    settings = job.measurement
    if loader.end_to_end:  # whole rounds of the workers, no waiting for the model time's interval
        settings = replace(settings, target_ci=0.0)
    process = timing.measure(step, settings, min_iters=loader.min_timed_batches(job.loader_workers),
                             noisy_iqr_ratio=job.noisy_iqr_ratio, on_timing_start=timing_starts)
    _synchronize(job.device)
    readings = isolation.mark("timing_end")
    busy = watch.stop()
    used = readings.get("memory") or tracker.stop()
    if job.device == "cuda":
        used.update(memory.torch_peaks())
    loader_stats = source.stats()
    if loader_stats is not None:
        loader_stats["end_to_end_fps"] = batch_size * process.summary.count / process.timed_seconds
    checked = None
    if with_accuracy:
        try:
            checked = _accuracy(job, session, batch_size)
        except Exception as err:  # noqa: BLE001 - the measurement stands; the row says why accuracy is missing
            checked = {"error": f"{type(err).__name__}: {err}"[:500]}
    source.close()
    isolation.mark("closed")
    return {"timing": process, "clock": clock.name, "first_run_ms": first_run_ms, "memory": used,
            "gpu": readings.get("gpu"), "contention": busy,
            "loader": loader_stats, "accuracy": checked, "backend": dict(session.info),
            "environment": env.capture(job.device, cuda_ready=job.device == "cuda")}


# --- parent side -------------------------------------------------------------------------------------

def static_unavailability(job: JobRequest, provenance: dict | None) -> tuple[str, str] | None:
    """Reasons known before any child runs: no GPU, an export that is a marker, a library missing."""
    if job.device == "cuda" and hardware.gpu_fingerprint() == hardware.NO_CUDA:
        return "unavailable", "no CUDA device on this machine (no NVIDIA GPU visible)"
    if provenance and provenance["status"] != "ok":
        return provenance["status"], f"export {provenance['status']}: {provenance['reason']}"
    reason = backends.get(job.backend).probe(job.device)
    if reason:
        return "unavailable", reason
    return None


def _preload(job: JobRequest) -> None:
    """Imports only (no CUDA, no torch ops): the forked children inherit them."""
    for module in backends.spec(job.backend).imports:
        try:
            importlib.import_module(module)
        except ImportError:
            pass  # the child reports the format unavailable with the import's own message


def _config_timeout(job: JobRequest) -> float:
    """Generous for load, compilation caches and warm-up, bounded so that a hang becomes a `failed` row."""
    settings = job.measurement
    return 300 + 3 * (settings.warmup_seconds + settings.max_seconds)


def schedule(configs: list, repeats: int) -> list[tuple[int, tuple]]:
    """Rounds over the configurations, each round starting a fraction further into the list: the processes
    of one configuration are a round apart, never back to back, and follow different neighbours."""
    order = []
    for round_index in range(repeats):
        offset = round_index * len(configs) // repeats
        order += [(round_index, config) for config in configs[offset:] + configs[:offset]]
    return order


def _process_record(outcome: isolation.Outcome) -> dict:
    value = outcome.value
    stages = {name: round(seconds, 4) for name, seconds in outcome.stages.items()}  # forked_at: epoch s
    return {"stages_s": stages, "first_run_ms": value["first_run_ms"], "memory": value["memory"],
            "gpu": value["gpu"], "loader": value["loader"], "contention": value.get("contention")}


def _row(job: JobRequest, loader: str, batch: int, outcomes: list[isolation.Outcome], accuracy: dict | None,
         extra: dict, environment: dict, artifact: dict | None) -> dict:
    config = job.config(loader, batch)
    failed = next((o for o in outcomes if o.status != "ok"), None)
    if failed is not None or not outcomes:
        index = outcomes.index(failed) + 1 if failed else 0
        reason = failed.reason if failed else "not measured"
        if failed and job.measurement.repeats > 1:
            reason = f"process {index} of {job.measurement.repeats}: {reason}"
        transient = bool(failed and (failed.transient or failed.status == "oom"))
        return results.record(config, failed.status if failed else "failed", reason, environment=environment,
                              artifact=artifact, backend=extra, transient=transient)
    values = [o.value for o in outcomes]
    processes = [_process_record(o) for o in outcomes]
    row_timing = Timing.of([v["timing"] for v in values], values[0]["clock"], job.noisy_iqr_ratio,
                           job.unstable_spread)
    row = results.record(
        config, "ok", timing=row_timing.to_json(),
        throughput=results.throughput(batch, row_timing.median, processes),
        memory=results.memory_summary([p["memory"] for p in processes]),
        gpu=results.gpu_summary([p["gpu"] for p in processes], batch, [v["timing"] for v in values]),
        accuracy=accuracy, environment=values[0]["environment"], artifact=artifact,
        backend={**extra, **values[0]["backend"]}, processes=processes)
    row["contention"] = row_summary([p["contention"] for p in processes])  # (results.py is not mine)
    return row


class DamagedArtifact(RuntimeError):
    """The export on disk is not the one its provenance hashed."""


def _verify_artifact(path: str, provenance: dict) -> None:
    """A file artifact must hash as at export time (a directory is a compiler cache its loads add to). A damaged
    one is set aside and the job stops before writing a row: the next plain run rebuilds it and remeasures."""
    actual = sha256_artifact(path)
    if actual == provenance["sha256"]:
        return
    integrity.set_aside_export(path, "sha256 differs from the export's")
    raise DamagedArtifact(f"{path}: sha256 {actual[:12]}… is not the export's {provenance['sha256'][:12]}… (damaged "
                          f"after export); set aside as {path}{integrity.DAMAGED}. Run the same command again: it "
                          "rebuilds the export and remeasures its rows.")


def run_job(job: JobRequest) -> list[dict]:
    configs = [(loader, batch) for batch in sorted(job.batch_sizes) for loader in job.loaders]
    provenance = read_json(job.provenance) if job.provenance else None  # the export, hashed at export time
    artifact = ({"path": job.artifact, "sha256": provenance["sha256"]}
                if provenance and provenance["status"] == "ok" else None)
    weights = model.weights_record(read_json(job.model_provenance)) if job.model_provenance else None
    if artifact and Path(job.artifact).is_file():
        _verify_artifact(job.artifact, provenance)

    def write(loader, batch, outcomes, accuracy=None, extra=None, environment=None) -> dict:
        record = _row(job, loader, batch, outcomes, accuracy, extra or {}, environment or env.capture(job.device),
                      artifact)
        if weights:
            record["weights"] = weights
        path = job.outputs[(loader, batch)]
        record["attempt"] = integrity.previous_attempts(path) + 1
        results.validate(record)
        write_json(path, record)
        Path(str(path) + integrity.PREVIOUS).unlink(missing_ok=True)
        return record

    def write_all(outcome: isolation.Outcome, environment: dict) -> list[dict]:
        """Every configuration of the job gets the same outcome: it could not be measured."""
        return [write(loader, batch, [outcome], environment=environment) for loader, batch in configs]

    known = static_unavailability(job, provenance)
    if known:
        log.info("%s %s %s %s×%s: %s: %s", job.format, job.device, job.precision, job.image_size, job.image_size,
                 *known)
        return write_all(isolation.Outcome(*known), env.capture(job.device))

    _preload(job)
    environment = env.capture(job.device)
    spec = backends.spec(job.backend)
    monitor = gpus.DeviceMonitor() if job.device == "cuda" else None
    changed = {key: value for key, value in job.options.items() if spec.options.get(key) != value}
    label = spec.label + (f" ({', '.join(f'{k}={v}' for k, v in sorted(changed.items()))})" if changed else "")
    extra: dict = {"label": label, "backend": job.backend}  # what the row's format is, for readers
    if backends.get(job.backend).has_tune:
        tuned = isolation.run_forked(tune_child, job, timeout=_config_timeout(job), spec=spec)
        if tuned.status != "ok":
            return write_all(tuned, environment)
        if tuned.value:
            job = replace(job, options={**job.options, **tuned.value})
            extra["tuned"] = tuned.value

    outcomes: dict[tuple, list] = {config: [] for config in configs}
    accuracy = None
    for round_index, (loader, batch) in schedule(configs, job.measurement.repeats):
        if any(o.status != "ok" for o in outcomes[(loader, batch)]):
            continue  # a configuration that failed once is not measured again in this job
        log.info("measuring %s %s %s %s loader=%s batch=%d (process %d of %d)", job.format, job.device,
                 job.precision, job.image_size, loader, batch, round_index + 1, job.measurement.repeats)
        outcome = isolation.run_forked(measure_child, job, loader, batch, accuracy is None,
                                       timeout=_config_timeout(job), spec=spec,
                                       on_mark=monitor.on_mark if monitor else None)
        if monitor:
            monitor.reset()
        if outcome.status == "unavailable":
            return write_all(outcome, environment)
        outcomes[(loader, batch)].append(outcome)
        if outcome.status == "ok":
            timed = outcome.value["timing"].summary
            log.info("-> median %.3f ms over %d iterations (stopped: %s)", timed.median, timed.count,
                     outcome.value["timing"].stop)
            if accuracy is None and outcome.value["accuracy"] is not None:
                accuracy = outcome.value["accuracy"]
        else:
            log.info("-> %s: %s", outcome.status, outcome.reason)
    if accuracy and "error" in accuracy:
        extra["accuracy_error"], accuracy = accuracy["error"], None
    return [write(loader, batch, outcomes[(loader, batch)], accuracy, extra, environment)
            for loader, batch in configs]
