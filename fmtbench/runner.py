"""Runs one benchmark job: every batch size and loader of one (format, device, precision, image size).

The job process imports the format's libraries once and forks measuring processes. Each measuring process
loads the model once and measures a group of the job's configurations with it, as a long-running server
would serve several batch sizes: every loader of a batch size one after the other (they share the input
shape, so autotuning at that shape is paid once), batch after batch. Between two configurations the
process releases what the previous one held (its inputs and loader, its CUDA graphs, the allocator's cache,
ONNX Runtime's arena: `Session.release`), so each configuration's memory figure is its own (memory.py).
Shared within a process, as in a server: the imported libraries, the CUDA context and library handles, the
loaded model and its compiled code, autotuning results per shape, and the real loaders' DataLoader workers
(data.Feeds: they make chunks of a few images, so they serve every batch size without a restart).

A Snakemake job covers every image size of its (format, device, precision): `run_jobs` measures them one
after the other in the one job process, whose imports are paid once.

Every row is measured in `processes` such processes (CUDA: 2), each taking the configurations in another
order (the batch sizes rotated, the loaders of a batch rotated too); rows whose processes
disagree by more than `unstable_spread` get further processes, up to `max_processes`. The parent never
initialises CUDA: it watches the GPU through NVML while a child measures (gpus.DeviceMonitor). A
configuration that fails is data (its JSON says why); a process that dies loses only the configuration it
was measuring, and the rest of its group is measured by another process. A JSON is written (atomically) for
every configuration, whatever happens.
"""
from __future__ import annotations

import gc
import importlib
import logging
import os
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

from fmtbench import accuracy as accuracy_check
from fmtbench import backends, data, env, gpus, hardware, integrity, isolation, memory, model, results, timing
from fmtbench.atomic import read_json, sha256_artifact, write_json
from fmtbench.backends.base import LoadRequest, Unavailable
from fmtbench.contention import Watch, row_summary
from fmtbench.stats import Throughput, Timing, spread_of

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


@dataclass(frozen=True)
class Planned:
    """One configuration in a measuring process's group."""
    loader: str
    batch: int
    accuracy: bool   # check the logits (the row's first successful process)
    energy: bool     # a back-to-back phase of at least energy_seconds (the row's first process)

    @property
    def key(self) -> tuple[str, int]:
        return self.loader, self.batch


# --- child side --------------------------------------------------------------------------------------

def _tiny_ops(device: str, dtype) -> None:
    import torch
    x = torch.ones(2, 3, 8, 8, device=device, dtype=dtype)
    y = torch.nn.functional.conv2d(x, torch.ones(4, 3, 3, 3, device=device, dtype=dtype))
    torch.nn.functional.batch_norm(y, torch.zeros(4, device=device, dtype=dtype), torch.ones(4, device=device,
                                                                                            dtype=dtype))
    return torch.ones(4, 4, device=device, dtype=dtype) @ torch.ones(4, 4, device=device, dtype=dtype)


def _library_handles(device: str, precision: str) -> None:
    """A tiny convolution, batch norm and matmul in the row's dtype, on every stream the formats use (the current
    one, the CUDA-graph warm-up stream, and a tiny graph captured on torch's capture stream): the libraries'
    handles, thread pools and per-stream workspaces exist before the process's baseline, so no configuration's
    figure holds them — the first of a process and a fresh process's alike."""
    import torch
    dtype = torch.float16 if precision == "fp16" else torch.float32
    with torch.inference_mode():
        _tiny_ops(device, dtype)
        if device != "cuda":
            return
        from fmtbench.backends._torchutil import side_stream
        side = side_stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            _tiny_ops(device, dtype)
        torch.cuda.current_stream().wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph, capture_error_mode="thread_local"):
            _tiny_ops(device, dtype)
        graph.replay()
        torch.cuda.synchronize()
        del graph
        torch.cuda.empty_cache()


def _init_device(job: JobRequest) -> dict:
    """Threads, the CUDA context and the library handles; returns what identifies the GPU to the parent's NVML."""
    import torch
    if job.threads:
        torch.set_num_threads(job.threads)
    if job.device != "cuda":
        _library_handles("cpu", job.precision)
        return {}
    if not torch.cuda.is_available():
        raise Unavailable("CUDA is not available to torch on this machine")
    torch.cuda.init()
    _library_handles("cuda", job.precision)
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


class _Accounting:
    """The measuring process's memory readings where its parent has no NVML view (CPU rows; CUDA without
    NVML): the model's load once, then each configuration's growth over its own baseline."""

    def __init__(self, device: str):
        self._tracker_type = memory.RssTracker if device == "cpu" else memory.CudaTracker
        self._process = self._tracker_type().start()
        self.load_mb = 0.0
        self.current = None

    def loaded(self) -> None:
        self._process.stage("load")
        self.load_mb = self._process.stop()["load_mb"]

    def start_config(self) -> None:
        self.current = self._tracker_type().start()

    def stage(self, name: str) -> None:
        self.current.stage(name)

    def end_config(self) -> dict:
        return memory.add_load(self.current.stop(), self.load_mb)


def _release(session, device: str, next_batch_size: int | None) -> None:
    """What the last configuration held goes back, so the next one's figure is its own."""
    release = getattr(session, "release", None)
    if release:
        release(next_batch_size)
    gc.collect()
    if device == "cuda":
        import torch
        torch.cuda.synchronize()
        torch.cuda.empty_cache()
    else:
        memory.release_free_heap()


def _measure_config(job: JobRequest, session, planned: Planned, accounting: _Accounting | None,
                    feeds: data.Feeds | None = None) -> dict:
    """One configuration in a process that has the model loaded. Marks its stages for the parent."""
    loader = data.loader(planned.loader)
    settings = job.measurement
    request = data.SourceRequest(job.device, job.image_size, planned.batch, job.loader_workers, job.manifest,
                                 backends.get(job.backend).input_format(job.load_request()), feeds=feeds)
    source = loader.open(request)  # before the baseline: a dummy batch, or the process's running workers
    _synchronize(job.device)
    if accounting:
        accounting.start_config()
    isolation.mark("config_start", loader=planned.loader, batch=planned.batch)
    if job.device == "cuda":
        import torch
        torch.cuda.reset_peak_memory_stats()
    try:
        source.start()
        clock = timing.clock_for(job.device)
        first_run_ms = _first_call(session, source, clock)
        if accounting:
            accounting.stage("first_run")
        isolation.mark("first_run")

        watch = Watch(job.device, hardware.usable_cores(), os.getpid())  # what else used the machine

        def timing_starts() -> None:
            watch.start()
            source.start_timing()
            isolation.mark("timing_start")

        if loader.end_to_end:
            process, _ = timing.measure_under_load(
                lambda: session.prepare(source.next()), session.run, timing.call_timer_for(job.device), clock.sync,
                settings, loader.min_timed_batches(job.loader_workers), noisy_iqr_ratio=job.noisy_iqr_ratio,
                on_timing_start=timing_starts)
        else:
            def step() -> float:
                prepared = session.prepare(source.next())
                return clock.time(lambda: session.run(prepared))
            process = timing.measure(step, settings, noisy_iqr_ratio=job.noisy_iqr_ratio,
                                     on_timing_start=timing_starts)
            process = replace(process, throughput=_throughput(job, session, source, planned, process, clock))
        _synchronize(job.device)
        busy = watch.stop()
        readings = isolation.mark("config_end")
        used = readings.get("memory") or accounting.end_config()
        shared = getattr(session, "memory_shared", None)
        if shared:
            used["shared"] = shared
        if job.device == "cuda":
            used.update(memory.torch_peaks())
        loader_stats = source.stats()
        if loader_stats is not None:
            loader_stats["end_to_end_fps"] = planned.batch * process.summary.count / process.timed_seconds
        checked = None
        if planned.accuracy:
            try:
                checked = _accuracy(job, session, planned.batch)
            except Exception as err:  # noqa: BLE001 - the measurement stands; the row says why accuracy is missing
                checked = {"error": f"{type(err).__name__}: {err}"[:500]}
    finally:
        source.close()
    return {"status": "ok", "timing": process, "clock": clock.name, "first_run_ms": first_run_ms, "memory": used,
            "gpu": readings.get("gpu"), "loader": loader_stats, "accuracy": checked, "contention": busy}


def _first_call(session, source, clock) -> float:
    """The first call at the configuration's shape (autotuning, graph capture), in ms; its input is not kept."""
    first = session.prepare(source.next())
    return clock.time(lambda: session.run(first)) * 1e3


def _throughput(job: JobRequest, session, source, planned: Planned, process, clock) -> Throughput | None:
    """Back to back on CUDA (at least energy_seconds in a row's first process, the board's energy read over
    it); on the CPU a call is synchronous: each timed call is its own block."""
    settings = job.measurement
    if job.device != "cuda":
        return Throughput.of([ms / 1e3 for ms in process.samples_ms], 1, planned.batch)
    if settings.throughput_seconds <= 0:
        return None
    prepared = session.prepare(source.next())
    seconds = max(settings.throughput_seconds, settings.energy_seconds if planned.energy else 0.0)
    isolation.mark("energy_start")
    measured = timing.measure_throughput(lambda: session.run(prepared), clock.sync, planned.batch,
                                         process.summary.median, seconds)
    isolation.mark("energy_end")
    return measured


def measure_group(job: JobRequest, plan: list[Planned]) -> dict:
    """A measuring process: the model loaded once, then each planned configuration, each reported to the parent
    as it is done (`config_done`), so a crash loses only the configuration being measured."""
    isolation.mark("started")
    backend = backends.get(job.backend)
    identity = _init_device(job)
    monitored = isolation.mark("baseline", **identity).get("device_memory", False)
    accounting = None if monitored else _Accounting(job.device)
    session = backend.load(job.load_request())
    _synchronize(job.device)
    if accounting:
        accounting.loaded()
    isolation.mark("loaded")
    # the real loaders' workers, kept running from one configuration to the next (data.Feeds)
    feeds = data.Feeds(data.chunk_size(job.batch_sizes))
    try:
        for index, planned in enumerate(plan):
            try:
                value = _measure_config(job, session, planned, accounting, feeds)
            except Exception as err:  # noqa: BLE001 - one configuration's failure is its row, the group goes on
                status = isolation.classify(err, backends.spec(job.backend))
                if status == "unavailable":
                    raise
                value = {"status": status, "reason": f"{type(err).__name__}: {err}"[:2000]}
                log.error("%s %s batch %d: %s: %s", job.format, planned.loader, planned.batch, status,
                          value["reason"].splitlines()[0][:300])
            isolation.mark("config_done", loader=planned.loader, batch=planned.batch, value=value)
            _release(session, job.device, plan[index + 1].batch if index + 1 < len(plan) else None)
    finally:
        feeds.close()
    info = dict(session.info)
    isolation.mark("closed")
    return {"backend": info, "environment": env.capture(job.device, cuda_ready=job.device == "cuda")}


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


def stall_timeout(job: JobRequest) -> float:
    """The longest a measuring process may go without reaching its next stage: generous for loading, compiler
    caches and a configuration's phases, bounded so that a hang becomes a `failed` row."""
    settings = job.measurement
    return 300 + 3 * (settings.warmup_seconds + settings.max_seconds + settings.throughput_seconds
                      + settings.energy_seconds)


def order(configs: list[tuple[str, int]], index: int, count: int) -> list[tuple[str, int]]:
    """The configurations of one measuring process: batch sizes rotated a fraction further for each process,
    the loaders of a batch (which share its shape, so autotuning is paid once) kept together, rotated one further
    for each process, so that each loader comes first at its batch size in some process (torch.compile keeps a
    batch size's CUDA graph for the next loader: only the first one's memory figure is its own; reversing the
    order every other process never put the middle loader, the dummy one, first)."""
    batches = sorted({batch for _, batch in configs})
    offset = index * len(batches) // max(count, 1)
    ordered = []
    for batch in batches[offset:] + batches[:offset]:
        loaders = [loader for loader, b in configs if b == batch]
        shift = index % len(loaders)
        ordered += [(loader, batch) for loader in loaders[shift:] + loaders[:shift]]
    return ordered


@dataclass
class _Row:
    """What the job has for one configuration so far."""
    values: list = field(default_factory=list)      # successful measurements, one per process
    processes: list = field(default_factory=list)   # their process records
    failure: tuple | None = None                    # (status, reason, transient)
    accuracy: dict | None = None


PROCESS_STAGES = ("started", "baseline", "loaded", "closed", "result", "exited", "forked_at")


def _process_record(value: dict, stages: dict, config_stages: dict, position: int, size: int, index: int) -> dict:
    """One process's part of a row: when the process reached its own stages (s since its fork; forked_at: epoch
    s), when this configuration reached its stages, where it stood in the group, and its readings."""
    stages = {name: stages[name] for name in PROCESS_STAGES if name in stages}
    return {"process": index + 1, "position": position + 1, "configurations": size, "stages_s": stages,
            "config_stages_s": config_stages, "first_run_ms": value["first_run_ms"], "memory": value["memory"],
            "gpu": value["gpu"], "loader": value["loader"], "contention": value.get("contention")}


class _Job:
    """The parent's side of a job: plans the measuring processes and gathers what they report."""

    def __init__(self, job: JobRequest, spec, configs: list[tuple[str, int]]):
        self.job, self.spec = job, spec
        self.rows = {key: _Row() for key in configs}
        self.monitor = gpus.DeviceMonitor() if job.device == "cuda" else None
        self.processes = 0
        self.info: dict = {}
        self.environment: dict | None = None

    def unstable(self, key) -> bool:
        values = self.rows[key].values
        return len(values) > 1 and spread_of([v["timing"].summary.median for v in values]) > self.job.unstable_spread

    def run(self, keys: list[tuple[str, int]], planned_processes: int) -> isolation.Outcome | None:
        """One measuring process over `keys` (in this process's order); returns an `unavailable` outcome if the
        format turned out not to run here."""
        index = self.processes
        self.processes += 1
        plan = [Planned(loader, batch, accuracy=self.rows[(loader, batch)].accuracy is None,
                        energy=not self.rows[(loader, batch)].values)
                for loader, batch in order(keys, index, planned_processes)]
        done: dict = {}
        marks: dict = {}
        current: list = [None]

        def on_mark(name: str, mark_data: dict) -> dict:
            now = isolation.elapsed()
            if name == "config_start":
                current[0] = (mark_data["loader"], mark_data["batch"])
                marks[current[0]] = {}
            if name == "config_done":
                key = (mark_data["loader"], mark_data["batch"])
                done[key] = mark_data["value"]
                marks.setdefault(key, {})["done"] = now  # no config_start: it failed before its baseline
                current[0] = None
                return {}
            if current[0] is not None:
                marks[current[0]][name] = now
            return self.monitor.on_mark(name, mark_data) if self.monitor else {}

        log.info("measuring %s %s %s %s: process %d, %d configuration(s)", self.job.format, self.job.device,
                 self.job.precision, self.job.image_size, index + 1, len(plan))
        outcome = isolation.run_forked(measure_group, self.job, plan, timeout=stall_timeout(self.job),
                                       spec=self.spec, on_mark=on_mark)
        if self.monitor:
            self.monitor.reset()
        if outcome.status == "unavailable":
            return outcome
        if outcome.status == "ok":
            self.info = outcome.value["backend"]
            self.environment = self.environment or outcome.value["environment"]
        stages = {name: round(seconds, 4) for name, seconds in outcome.stages.items()}
        for position, planned in enumerate(plan):
            row, value = self.rows[planned.key], done.get(planned.key)
            if value is None:
                if outcome.status != "ok" and (current[0] == planned.key or not done and not marks):
                    # the configuration it died (or failed to start) in
                    reason = f"measuring process {index + 1}: {outcome.reason}"
                    row.failure = (outcome.status, reason, outcome.transient or outcome.status == "oom")
                continue  # not reached: measured by a later process
            if value["status"] != "ok":
                row.failure = (value["status"], value["reason"], value["status"] == "oom")
                continue
            row.values.append(value)
            row.processes.append(_process_record(value, stages, {k: round(v, 4) for k, v in
                                                                 marks[planned.key].items()},
                                                 position, len(plan), index))
            if row.accuracy is None and value["accuracy"] is not None:
                row.accuracy = value["accuracy"]
            timed = value["timing"]
            log.info("-> %s batch %d: median %.3f ms over %d calls (stopped: %s)%s", planned.loader, planned.batch,
                     timed.summary.median, timed.summary.count, timed.stop,
                     f", {timed.throughput.images_per_s:.0f} img/s back to back" if timed.throughput else "")
        return None

    def measure(self) -> isolation.Outcome | None:
        """`processes` rounds over every configuration (a configuration a process did not reach is measured by
        the next one), then more processes for the rows whose processes disagree, up to `max_processes`."""
        settings = self.job.measurement
        keys = list(self.rows)
        for round_index in range(settings.processes):
            for _ in range(3):  # the round's configurations a crashed process left, in another process
                pending = [k for k in keys if self.rows[k].failure is None and len(self.rows[k].values) <= round_index]
                if not pending:
                    break
                unavailable = self.run(pending, settings.processes)
                if unavailable:
                    return unavailable
        while True:
            pending = [k for k in keys if self.rows[k].failure is None and self.unstable(k)
                       and len(self.rows[k].values) < settings.max_processes]
            if not pending:
                return None
            unavailable = self.run(pending, settings.max_processes)
            if unavailable:
                return unavailable


def _row(job: JobRequest, loader: str, batch: int, row: _Row, extra: dict, environment: dict,
         artifact: dict | None) -> dict:
    config = job.config(loader, batch)
    if row.failure is not None or not row.values:
        status, reason, transient = row.failure or ("failed", "not measured", False)
        return results.record(config, status, reason, environment=environment, artifact=artifact, backend=extra,
                              transient=transient)
    values = row.values
    row_timing = Timing.of([v["timing"] for v in values], values[0]["clock"], job.noisy_iqr_ratio,
                           job.unstable_spread)
    accuracy, backend = row.accuracy, dict(extra)
    if accuracy and "error" in accuracy:
        backend["accuracy_error"], accuracy = accuracy["error"], None
    return results.record(
        config, "ok", timing=row_timing.to_json(),
        throughput=results.throughput(batch, row_timing, row.processes),
        memory=results.memory_summary([p["memory"] for p in row.processes]),
        gpu=results.gpu_summary([p["gpu"] for p in row.processes], batch, [v["timing"] for v in values]),
        accuracy=accuracy, environment=environment, artifact=artifact, backend=backend,
        processes=row.processes, measurement=job.measurement.record(),
        contention=row_summary([p["contention"] for p in row.processes]))


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


def run_jobs(jobs: list[JobRequest]) -> list[dict]:
    """A Snakemake job's image sizes one after the other, in one job process (its imports made once)."""
    records = []
    for job in jobs:
        started = time.perf_counter()
        records += run_job(job)
        log.info("%s %s %s %s×%s: %d rows in %.1f s", job.format, job.device, job.precision, job.image_size,
                 job.image_size, len(job.outputs), time.perf_counter() - started)
    return records


def run_job(job: JobRequest) -> list[dict]:
    configs = [(loader, batch) for batch in sorted(job.batch_sizes) for loader in job.loaders]
    provenance = read_json(job.provenance) if job.provenance else None  # the export, hashed at export time
    artifact = ({"path": job.artifact, "sha256": provenance["sha256"]}
                if provenance and provenance["status"] == "ok" else None)
    weights = model.weights_record(read_json(job.model_provenance)) if job.model_provenance else None
    if artifact and Path(job.artifact).is_file():
        _verify_artifact(job.artifact, provenance)

    def write(loader, batch, row: _Row, extra=None, environment=None) -> dict:
        record = _row(job, loader, batch, row, extra or {}, environment or env.capture(job.device), artifact)
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
        failed = _Row(failure=(outcome.status, outcome.reason, outcome.transient or outcome.status == "oom"))
        return [write(loader, batch, failed, environment=environment) for loader, batch in configs]

    known = static_unavailability(job, provenance)
    if known:
        log.info("%s %s %s %s×%s: %s: %s", job.format, job.device, job.precision, job.image_size, job.image_size,
                 *known)
        return write_all(isolation.Outcome(*known), env.capture(job.device))

    _preload(job)
    environment = env.capture(job.device)
    spec = backends.spec(job.backend)
    changed = {key: value for key, value in job.options.items() if spec.options.get(key) != value}
    label = spec.label + (f" ({', '.join(f'{k}={v}' for k, v in sorted(changed.items()))})" if changed else "")
    extra: dict = {"label": label, "backend": job.backend}  # what the row's format is, for readers
    if backends.get(job.backend).has_tune:
        tuned = isolation.run_forked(tune_child, job, timeout=stall_timeout(job), spec=spec)
        if tuned.status != "ok":
            return write_all(tuned, environment)
        if tuned.value:
            job = replace(job, options={**job.options, **tuned.value})
            extra["tuned"] = tuned.value

    state = _Job(job, spec, configs)
    unavailable = state.measure()
    if unavailable:
        return write_all(unavailable, environment)
    extra = {**extra, **state.info, "options": job.options}
    return [write(loader, batch, state.rows[(loader, batch)], extra, state.environment or environment)
            for loader, batch in configs]
