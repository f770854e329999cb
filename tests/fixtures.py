"""Deterministic result JSONs for report tests (two machines, CPU and CUDA rows, failures)."""
from fmtbench import accuracy, model, results, stats
from fmtbench.atomic import write_json
from fmtbench.paths import RESULTS

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
               "noisy_iqr_ratio": 0.1, "unstable_spread": 0.05}


def _process(median, batch, loader, device, count=6, spread=0.01):
    samples = [median * (1 + spread * ((i % 3) - 1)) for i in range(count)]
    under_load = loader == "real"
    throughput = None
    if not under_load:  # back to back: a little faster than synchronised single calls on the GPU
        gain = 1.05 if device == "cuda" else 1.0
        throughput = stats.Throughput.of([median / 1e3 * 10 / gain] * 4, 10, batch)
    return stats.ProcessTiming(kind="under_load" if under_load else "latency", samples_ms=samples,
                               summary=stats.Summary.of(samples), warmup_iters=10, warmup_seconds=0.1,
                               timed_seconds=sum(samples) / 1e3 * 1.2, stop="rounds" if under_load else "ci",
                               throughput=throughput)


def _loader_stats(batch, e2e_fps, capacity):
    wait = {"median": 0.5, "mean": 0.6, "p90": 1.0, "max": 2.0}
    return {"data_wait_ms": wait, "batches_timed": 24, "producer": "12 DataLoader worker(s)", "producers": 12,
            "concurrent": True, "produce_ms_per_batch": wait, "decode_capacity_fps": capacity,
            "end_to_end_fps": e2e_fps}


def result(host, fmt, precision, device, loader, size, batch):
    config = results.Config(fmt, precision, device, loader, size, batch, host)
    environment = ENVIRONMENTS[host]
    if (host, fmt, device) == ("gpu-box", "onnx", "cuda") and precision == "fp16" and batch == 8:
        return results.record(config, "oom", "CUDA out of memory", environment=environment)
    scale = (size / 32) ** 2 * batch / 4 * (4.0 if device == "cpu" else 1.0) * (1.3 if host == "cpu-box" else 1.0)
    median = BASE_MS[(fmt, precision)] * scale
    # eager fp16 on the GPU is bimodal between processes, as on the H100
    medians = [median] if device == "cpu" else ([median, median * 1.4, median * 1.01]
                                                if (fmt, precision) == ("torch", "fp16") else [median] * 2)
    timing = stats.Timing.of([_process(m, batch, loader, device) for m in medians], "fixture clock", 0.1, 0.05)
    model_fps = batch / timing.median * 1e3
    memory = {"method": "fixture memory", "baseline_mb": 100.0, "peak_mb": 100.0 + batch * size / 8,
              "allocated_mb": batch * size / 8 * (0.8 if fmt == "onnx" else 1.0),
              "load_mb": 40.0, "first_run_mb": 60.0}
    processes = [{"stages_s": {"started": 0.05, "baseline": 0.5, "loaded": 0.6, "first_run": 0.8,
                               "timing_start": 0.9, "timing_end": 1.4, "closed": 1.45, "result": 1.46,
                               "exited": 1.5, "forked_at": 1_800_000_000.0},
                  "first_run_ms": 200.0, "memory": memory, "gpu": None,
                  "loader": _loader_stats(batch, model_fps * 0.7, model_fps * 0.72) if loader == "real" else None}
                 for _ in medians]
    reference_logits_error = 1e-6 if precision == "fp32" else 2e-3
    return results.record(
        config, "ok", timing=timing.to_json(),
        throughput=results.throughput(batch, timing, processes),
        memory=results.memory_summary([p["memory"] for p in processes]),
        gpu={"energy_j_per_image": 0.01, "throttled": False, "clock_event_reasons": []} if device == "cuda" else None,
        accuracy={"reference": "PyTorch fp32 eager, CPU", "images": 32, "batch_size": 4,
                  "arithmetic": accuracy.arithmetic(precision), "max_rel_error": reference_logits_error,
                  "median_rel_error": reference_logits_error / 2,
                  "rel_error_limit": accuracy.relative_error_limit(precision), "within_limit": True,
                  "non_finite_images": 0, "max_abs_diff": 1e-5, "mean_abs_diff": 1e-6,
                  "top1_agreement_pct": 96.875 if precision == "fp16" and fmt == "onnx" else 100.0,
                  "reference_top1_share": 0.875},
        environment=environment, artifact=None,
        backend={"math": precision, "label": "fixture format", "backend": fmt,
                 "options": {"fp32_math": "strict"}},
        processes=processes, measurement=MEASUREMENT[device])


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
                                    record = results.record(results.Config(fmt, precision, device, loader, size,
                                                                           batch, host),
                                                            "unavailable", "no CUDA device on this machine",
                                                            environment=ENVIRONMENTS[host])
                                else:
                                    record = result(host, fmt, precision, device, loader, size, batch)
                                record["weights"] = WEIGHTS
                                results.validate(record)
                                path = root / RESULTS.format(host=host, format=fmt, device=device,
                                                             precision=precision, size=size, loader=loader,
                                                             batch=batch)
                                write_json(path, record)
                                paths.append(str(path))
    return paths


MODEL_PROVENANCE = {"source": "random-fallback", "seed": 0,
                    "reason": "download of https://example.invalid/resnet18.pth failed: offline"}
WEIGHTS = model.weights_record(MODEL_PROVENANCE)


def model_provenance(root):
    path = root / "provenance.json"
    write_json(path, MODEL_PROVENANCE)
    return path
