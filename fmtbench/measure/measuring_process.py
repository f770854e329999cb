"""The measuring process (forked from the job process, which imported the libraries but never initialised CUDA).

It loads the model once and measures a group of the request's configurations with it, as a long-running server
would serve several batch sizes: the configurations one after the other, each timed by its loader's scenario.
Between two configurations the process releases what the previous one held (its inputs and loader, its CUDA
graphs, the allocator's cache, ONNX Runtime's arena: `Session.release`), so each configuration's memory figure is
its own (memory.py). Shared within a process, as in a server: the imported libraries, the CUDA context and
library handles, the loaded model and its compiled code, autotuning results per shape, and the real loaders'
DataLoader workers (data.Feeds: they make chunks of a few images, so they serve every batch size without a
restart). It marks every stage (messages.Mark) and reports each configuration as soon as it is done.
"""
from __future__ import annotations

import gc
import logging
import os
from dataclasses import replace

from fmtbench import accuracy, backends, data, env, host_turns, isolation, row_parts
from fmtbench.backends.base import Unavailable
from fmtbench.measure import memory, scenarios, timing
from fmtbench.measure.messages import Failed, Mark, Planned, Reading
from fmtbench.measure.request import Request
from fmtbench.typedjson import from_json

log = logging.getLogger(__name__)


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


def init_device(request: Request) -> dict:
    """The C heap's policy, threads, the CUDA context and the library handles; returns what identifies the GPU to
    the parent's NVML."""
    if request.measurement.switches.keep_freed_memory:
        memory.keep_freed_memory()
    import torch
    if request.threads:
        torch.set_num_threads(request.threads)
    if request.device != "cuda":
        _library_handles("cpu", request.precision)
        return {}
    if not torch.cuda.is_available():
        raise Unavailable("CUDA is not available to torch on this machine")
    torch.cuda.init()
    _library_handles("cuda", request.precision)
    properties = torch.cuda.get_device_properties(0)
    identity = {"uuid": str(getattr(properties, "uuid", "") or "")}
    if hasattr(properties, "pci_bus_id"):
        identity["pci_bus_id"] = (f"{properties.pci_domain_id:08x}:{properties.pci_bus_id:02x}:"
                                  f"{properties.pci_device_id:02x}.0")
    return identity


def tune(request: Request) -> dict:
    """The backend's once-per-job settings, measured in a process of its own."""
    init_device(request)
    return backends.get(request.backend).tune(request.load_request())


def _check_accuracy(request: Request, session, batch_size: int) -> row_parts.Accuracy:
    """The session's logits on the fixed images, in batches of the configuration's size (the last one padded
    with the first images), against the reference (PyTorch fp32 eager on the CPU)."""
    import torch
    reference = torch.load(request.reference, map_location="cpu", weights_only=False)
    images = reference["images"]
    inputs, _ = data.fixed_batch(images, request.image_size, len(images))
    fmt = backends.get(request.backend).input_format(request.load_request())
    logits = []
    for start in range(0, len(inputs), batch_size):
        piece = inputs[start:start + batch_size]
        count = len(piece)
        if count < batch_size:  # same shape as the timed batches (CUDA graphs, static engines)
            piece = torch.cat([piece, inputs[torch.arange(batch_size - count) % len(inputs)]])
        piece = data.in_format(piece, fmt, request.device)
        logits.append(session.logits(session.run(session.prepare(piece)))[:count])
    result = accuracy.compare(torch.cat(logits).numpy(), reference["logits"].numpy(), request.precision,
                              request.options.get("fp32_math", "strict"))
    return row_parts.Accuracy(reference="PyTorch fp32 eager, CPU", batch_size=batch_size, **result)


def _synchronize(device: str) -> None:
    if device == "cuda":
        import torch
        torch.cuda.synchronize()


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


def _release_first_call_cache() -> None:
    """What the first call's autotuning left unused in torch's cache goes back to the driver before the warm-up.
    cuDNN's benchmark mode tries each algorithm of a new shape with a workspace of its own; the cache kept them, so
    the configuration that tuned a shape held up to 280 MB more through its timed phases than one that reused the
    shape's choice in the same process (TorchScript fp32, 224² batch 32, real loader, H200, 2026-12-06: 712 MB where
    it went first, 432 where the GPU-decode configuration had tuned the shape before it)."""
    import torch
    torch.cuda.synchronize()
    torch.cuda.empty_cache()


def _first_call(session, source, clock) -> float:
    """The first call at the configuration's shape (autotuning, graph capture), in ms; its input is not kept."""
    first = session.prepare(source.next())
    return clock.time(lambda: session.run(first)) * 1e3


def measure_configuration(request: Request, session, planned: Planned, accounting: memory.ProcessAccounting | None,
                          feeds: data.Feeds | None = None) -> Reading:
    """One configuration in a process that has the model loaded."""
    loader = data.loader(planned.loader)
    settings = request.measurement
    source = loader.open(data.SourceRequest(
        request.device, request.image_size, planned.batch, request.loader_workers, request.manifest,
        backends.get(request.backend).input_format(request.load_request()), feeds=feeds))
    _synchronize(request.device)  # the source is made before the baseline: a dummy batch, or the running workers
    collecting = request.measurement.switches.gc_during_measurement or not gc.isenabled()
    if not collecting:
        gc.disable()  # as timeit does: no collection of the harness's own garbage inside a configuration
    if accounting:
        accounting.start_config()
    isolation.mark(Mark.CONFIG_START, loader=planned.loader, batch=planned.batch)
    if request.device == "cuda":
        import torch
        torch.cuda.reset_peak_memory_stats()
    try:
        source.start()
        clock = timing.clock_for(request.device)
        first_run_ms = _first_call(session, source, clock)
        if accounting:
            accounting.stage("first_run")
        isolation.mark(Mark.FIRST_RUN)
        if request.device == "cuda" and settings.switches.release_first_call_cache:
            _release_first_call_cache()
        scenario = scenarios.for_configuration(loader.scenario, settings, settings.noisy_iqr_ratio, request.device,
                                               energy=planned.energy,
                                               batches=loader.min_timed_batches(request.loader_workers))
        def mark(name: Mark) -> None:
            if accounting and name == Mark.TIMING_START:
                accounting.timing_starts()
            isolation.mark(name)

        process = scenario.run(session, source, clock, planned.batch, mark)
        _synchronize(request.device)
        replies = isolation.mark(Mark.CONFIG_END)
        used = replies.get("memory") or row_parts.MemoryReading(**accounting.end_config())
        extra = {"shared": getattr(session, "memory_shared", None)}
        if request.device == "cuda":
            extra.update(memory.torch_peaks())
        used = replace(used, **{key: value for key, value in extra.items() if value is not None})
        stats = source.stats()
        loader_stats = None if stats is None else from_json(row_parts.LoaderStats, {
            **stats, "end_to_end_fps": planned.batch * process.steady_batches / process.steady_seconds})
        checked, error = None, None
        if planned.accuracy:
            try:
                checked = _check_accuracy(request, session, planned.batch)
            except Exception as err:  # noqa: BLE001 - the measurement stands; the row says why accuracy is missing
                error = f"{type(err).__name__}: {err}"[:500]
    finally:
        source.close()
        if not collecting:
            gc.enable()
    return Reading(timing=process, clock=clock.name, first_run_ms=first_run_ms, memory=used, gpu=replies.get("gpu"),
                   loader=loader_stats, accuracy=checked, accuracy_error=error, contention=replies.get("contention"))


def measure_group(request: Request, plan: list[Planned]) -> dict:
    """A measuring process: the model loaded once, then each planned configuration, each reported to the parent
    as it is done (`CONFIG_DONE`), so a crash loses only the configuration being measured."""
    isolation.mark(Mark.STARTED, pid=os.getpid())
    backend = backends.get(request.backend)
    identity = init_device(request)
    if request.device == "cuda" and any(item.loader == "real_gpu_decode" for item in plan):
        data.warm_gpu_decoder()  # nvJPEG's handle, kept for the process: like the libraries' handles, not a figure
    monitored = isolation.mark(Mark.BASELINE, **identity).get("device_memory", False)
    accounting = None if monitored else memory.ProcessAccounting(request.device)
    session = backend.load(request.load_request())
    _synchronize(request.device)
    if accounting:
        accounting.loaded()
    isolation.mark(Mark.LOADED)
    if request.measurement.switches.freeze_after_load:
        gc.collect()  # what is garbage already is not frozen with the rest
        gc.freeze()  # what lives for the whole process: the collection between configurations no longer scans it
    # the real loaders' workers, kept running from one configuration to the next (data.Feeds)
    feeds = data.Feeds(data.chunk_size(request.batch_sizes))
    # a CPU row's configuration on the host's exclusive turn: no real loader's workers, export or reference beside it
    turns = host_turns.Turns() if request.device == "cpu" and request.measurement.switches.host_turns else None
    try:
        for index, planned in enumerate(plan):
            try:
                taken = turns.take(host_turns.EXCLUSIVE, heartbeat=lambda: isolation.mark(Mark.WAITING)) \
                    if turns else None
                value = measure_configuration(request, session, planned, accounting, feeds)
                if taken:
                    value = replace(value, turn=row_parts.HostTurn(kind=taken.kind, waited_s=taken.waited_s,
                                                                   coordinated=taken.coordinated))
            except Exception as err:  # noqa: BLE001 - one configuration's failure is its row, the group goes on
                status = isolation.classify(err, backends.spec(request.backend))
                if status == "unavailable":
                    raise
                value = Failed(status, f"{type(err).__name__}: {err}"[:2000])
                log.error("%s %s batch %d: %s: %s", request.format, planned.loader, planned.batch, status,
                          value.reason.splitlines()[0][:300])
            finally:
                if turns:
                    turns.release()
            isolation.mark(Mark.CONFIG_DONE, loader=planned.loader, batch=planned.batch, value=value)
            _release(session, request.device, plan[index + 1].batch if index + 1 < len(plan) else None)
    finally:
        feeds.close()
        if turns:
            turns.close()
    info = dict(session.info)
    isolation.mark(Mark.CLOSED)
    environment = env.capture(request.device, cuda_ready=request.device == "cuda")
    environment["c_heap_keeps_freed_memory"] = memory.keeps_freed_memory()
    return {"backend": info, "environment": environment}
