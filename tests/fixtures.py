"""Deterministic result JSONs for report tests (two machines, CPU and CUDA rows, failures)."""
from dataclasses import replace

from fmtbench import accuracy, model, results, row_parts, stats
from fmtbench.atomic import write_json
from fmtbench.measure import assemble
from fmtbench.paths import RESULTS
from fmtbench.settings import Settings, for_device

ENVIRONMENTS = {
    "cpu-box": {"hostname": "a", "cpu_model": "Test CPU 8C", "cpu_count": 8, "torch_threads": 8,
                "cpu_affinity": list(range(8)), "cpu_physical_cores": 4,
                "libraries": {"torch": "2.14.1", "onnxruntime": "1.31.1"}, "measured_at": "2026-01-01T00:00:00+00:00"},
    "gpu-box": {"hostname": "b", "cpu_model": "Test CPU 16C", "cpu_count": 16, "torch_threads": 7,
                "cpu_affinity": list(range(7, 14)), "cpu_physical_cores": 7,
                "gpu_name": "Test GPU 80GB", "driver": "580.1", "cuda_runtime": "13.0", "cudnn": 91900,
                "libraries": {"torch": "2.11.0", "onnxruntime": "1.31.1"}, "measured_at": "2026-01-01T00:00:00+00:00"},
}
BASE_MS = {("torch", "fp32"): 10.0, ("torch", "fp16"): 5.0, ("onnx", "fp32"): 8.0, ("onnx", "fp16"): 4.5}


MEASUREMENT = {"cpu": {"processes": 1, "max_processes": 1, "warmup_iters": 2, "warmup_seconds": 0, "min_iters": 5,
                       "min_seconds": 0, "max_seconds": 10, "target_ci": 0.02, "throughput_seconds": 0,
                       "energy_seconds": 0},
               "cuda": {"processes": 2, "max_processes": 5, "warmup_iters": 10, "warmup_seconds": 0.1,
                        "min_iters": 20, "min_seconds": 0.05, "max_seconds": 2.0, "target_ci": 0.01,
                        "throughput_seconds": 0.25, "energy_seconds": 1.0},
               "noisy_iqr_ratio": 0.1, "unstable_spread": 0.05, "host_bound_share": 0.9}


def _process(median, batch, loader, device, count=6, spread=0.01, busy=0.97):
    """`busy`: the share of a call the GPU is busy (CUDA model-alone rows: their device time is `busy` × median)."""
    samples = [median * (1 + spread * ((i % 3) - 1)) for i in range(count)]
    under_load = loader == "real"
    throughput = None
    if not under_load:  # back to back: a little faster than synchronised single calls on the GPU
        gain = 1.05 if device == "cuda" else 1.0
        throughput = stats.Throughput.of([median / 1e3 * 10 / gain] * 4, 10, batch)
    timed = sum(samples) / 1e3 * 1.2
    return stats.ProcessTiming(kind="under_load" if under_load else "latency", samples_ms=samples,
                               summary=stats.Summary.of(samples), warmup_iters=10, warmup_seconds=0.1,
                               timed_seconds=timed, stop="rounds" if under_load else "ci", throughput=throughput,
                               gpu_ms=busy * median if device == "cuda" and not under_load else None,
                               steady_batches=count - 2 if under_load else None,
                               steady_seconds=timed * (count - 2) / count if under_load else None)


def _loader_stats(batch, e2e_fps, capacity):
    wait = row_parts.MsSummary(median=0.5, mean=0.6, p90=1.0, max=2.0)
    return row_parts.LoaderStats(data_wait_ms=wait, batches_timed=24, producer="12 DataLoader worker(s)",
                                producers=12, concurrent=True, produce_ms_per_batch=wait,
                                decode_capacity_fps=capacity, distinct_images_per_batch=None,
                                end_to_end_fps=e2e_fps)


def config(fmt, precision, device, loader, size, batch, host):
    return results.Config(format=fmt, precision=precision, device=device, loader=loader, image_size=size,
                          batch_size=batch, host=host)


def settings(device) -> Settings:
    return Settings.from_json(for_device({**MEASUREMENT, "harness": {
        "device_memory_sampling": True, "contention_watch": True, "loaders_apart": True, "rotate_order": True,
        "gc_during_measurement": False, "pin_cores": True}}, device))


def row(host, fmt, precision, device, loader, size, batch) -> results.Row:
    where = config(fmt, precision, device, loader, size, batch, host)
    environment = ENVIRONMENTS[host]
    if (host, fmt, device) == ("gpu-box", "onnx", "cuda") and precision == "fp16" and batch == 8:
        return results.failure(where, "oom", "CUDA out of memory", environment=environment)
    scale = (size / 32) ** 2 * batch / 4 * (4.0 if device == "cpu" else 1.0) * (1.3 if host == "cpu-box" else 1.0)
    median = BASE_MS[(fmt, precision)] * scale
    # eager fp16 on the GPU is bimodal between processes, as on the H100
    medians = [median] if device == "cpu" else ([median, median * 1.4, median * 1.01]
                                                if (fmt, precision) == ("torch", "fp16") else [median] * 2)
    # eager fp16 at the smallest size is launch-bound: the GPU busy for 60 % of a call (◊)
    busy = 0.6 if (fmt, precision, size) == ("torch", "fp16", 32) else 0.97
    timing = stats.Timing.of([_process(m, batch, loader, device, busy=busy) for m in medians], "fixture clock", 0.1,
                             0.05, 0.9)
    model_fps = batch / timing.median * 1e3
    steady = batch * size / 8 * (0.8 if fmt == "onnx" else 1.0)
    memory = row_parts.MemoryReading(method="fixture memory", baseline_mb=100.0, peak_mb=120.0 + batch * size / 8,
                                    allocated_mb=steady + 20.0, load_mb=40.0, first_run_mb=60.0,
                                    first_call_peak_mb=steady + 20.0, steady_mb=steady)
    loader_stats = _loader_stats(batch, model_fps * 0.7, model_fps * 0.72) if loader == "real" else None
    processes = [row_parts.ProcessEntry(
        process=index + 1, position=1, configurations=1,
        stages_s={"started": 0.05, "baseline": 0.5, "loaded": 0.6, "closed": 1.45, "result": 1.46, "exited": 1.5,
                  "forked_at": 1_800_000_000.0},
        config_stages_s={"config_start": 0.7, "first_run": 0.8, "timing_start": 0.9, "config_end": 1.4},
        first_run_ms=200.0, memory=memory, gpu=None, loader=loader_stats, contention=None)
        for index, _ in enumerate(medians)]
    reference_logits_error = 1e-6 if precision == "fp32" else 2e-3
    return results.Row(
        schema_version=results.SCHEMA_VERSION, config=where, status="ok", reason=None, transient=False, attempt=1,
        timing=timing, throughput=assemble.rates(batch, timing, [p.loader for p in processes if p.loader]),
        memory=assemble.memory_summary([p.memory for p in processes]),
        gpu=row_parts.GpuSummary(energy_j_per_image=0.01, energy_method=assemble.ENERGY_METHOD,
                                energy_phase_seconds=None, sm_clock_mhz=None, power_w_max=None, power_limit_w=None,
                                clock_event_reasons=[], throttled=False) if device == "cuda" else None,
        accuracy=row_parts.Accuracy(
            reference="PyTorch fp32 eager, CPU", images=32, batch_size=4, arithmetic=accuracy.arithmetic(precision),
            max_rel_error=reference_logits_error, median_rel_error=reference_logits_error / 2,
            rel_error_limit=accuracy.relative_error_limit(precision), within_limit=True, non_finite_images=0,
            max_abs_diff=1e-5, mean_abs_diff=1e-6,
            top1_agreement_pct=96.875 if precision == "fp16" and fmt == "onnx" else 100.0,
            reference_top1_share=0.875),
        environment=environment, artifact=None,
        backend={"math": precision, "label": "fixture format", "backend": fmt, "options": {"fp32_math": "strict"}},
        processes=processes, measurement=settings(device), contention=None)


def result(host, fmt, precision, device, loader, size, batch) -> dict:
    """The row as its JSON."""
    return row(host, fmt, precision, device, loader, size, batch).to_json()


def write_results(root, hosts=("cpu-box", "gpu-box")):
    paths = []
    for host in hosts:
        for fmt in ("torch", "onnx"):
            for device, precisions in (("cpu", ["fp32"]), ("cuda", ["fp16", "fp32"])):
                for precision in precisions:
                    for size in (32, 64):
                        for batch in (4, 8):
                            for loader in ("real", "dummy"):
                                if host == "cpu-box" and device == "cuda":
                                    made = results.failure(config(fmt, precision, device, loader, size, batch, host),
                                                           "unavailable", "no CUDA device on this machine",
                                                           environment=ENVIRONMENTS[host])
                                else:
                                    made = row(host, fmt, precision, device, loader, size, batch)
                                record = replace(made, weights=WEIGHTS).to_json()
                                results.validate(record)
                                path = root / RESULTS.format(host=host, format=fmt, device=device,
                                                             precision=precision, size=size, loader=loader,
                                                             batch=batch)
                                write_json(path, record)
                                paths.append(str(path))
    return paths


MODEL_PROVENANCE = {"source": "random-fallback", "seed": 0,
                    "reason": "download of https://example.invalid/resnet18.pth failed: offline"}
WEIGHTS = results.Weights(**model.weights_record(MODEL_PROVENANCE))


def model_provenance(root):
    path = root / "provenance.json"
    write_json(path, MODEL_PROVENANCE)
    return path


# The report's tests: the baseline every speedup is against, the report of these rows, their ok rows.
BASELINE = {"format": "torch", "precision": "fp32"}


def render_report(root):
    from fmtbench.report import render
    paths = write_results(root)
    report = root / "report" / "report.md"
    render.render(paths, model_provenance(root), report, BASELINE)
    return report


def ok_rows(tmp_path):
    from fmtbench.report import frame
    rows = frame.with_speedup(frame.load(write_results(tmp_path)), "torch", "fp32")
    return rows[rows["status"] == "ok"].copy()


def cuda_model(ok, size=32, batch=4):
    return ok[(ok["host"] == "gpu-box") & (ok["device"] == "cuda") & (ok["loader"] == "dummy")
              & (ok["image_size"] == size) & (ok["batch_size"] == batch)]
