"""Deterministic result JSONs for report tests (two machines, CPU and CUDA rows, failures)."""
from fmtbench import results
from fmtbench.atomic import write_json
from fmtbench.study import RESULTS

ENVIRONMENTS = {
    "cpu-box": {"hostname": "a", "cpu_model": "Test CPU 8C", "cpu_count": 8, "torch_threads": 8,
                "libraries": {"torch": "2.14.1", "onnxruntime": "1.31.1"}, "measured_at": "2026-01-01T00:00:00+00:00"},
    "gpu-box": {"hostname": "b", "cpu_model": "Test CPU 16C", "cpu_count": 16, "torch_threads": 16,
                "gpu_name": "Test GPU 80GB", "driver": "580.1", "cuda_runtime": "13.0", "cudnn": 91900,
                "libraries": {"torch": "2.11.0", "onnxruntime": "1.31.1"}, "measured_at": "2026-01-01T00:00:00+00:00"},
}
BASE_MS = {("torch", "fp32"): 10.0, ("torch", "fp16"): 5.0, ("onnx", "fp32"): 8.0, ("onnx", "fp16"): 4.5}


def _timing(median):
    return {"unit": "ms", "count": 50, "median": median, "mean": median * 1.01, "p90": median * 1.05,
            "p99": median * 1.1, "min": median * 0.97, "max": median * 1.2, "std": median * 0.02,
            "iqr": median * 0.03, "ci95_median": [median * 0.99, median * 1.01], "noisy": median > 100,
            "truncated": False, "warmup_iters": 20, "warmup_seconds": 1.0, "timed_seconds": 2.0,
            "clock": "torch.cuda.synchronize + time.perf_counter"}


def result(host, fmt, precision, device, loader, size, batch):
    config = results.Config(fmt, precision, device, loader, size, batch, host)
    environment = ENVIRONMENTS[host]
    if (host, fmt, device) == ("gpu-box", "onnx", "cuda") and precision == "fp16" and batch == 8:
        return results.record(config, "oom", "CUDA out of memory", environment=environment)
    scale = (size / 32) ** 2 * batch / 4 * (4.0 if device == "cpu" else 1.0) * (1.3 if host == "cpu-box" else 1.0)
    median = BASE_MS[(fmt, precision)] * scale
    memory = {"method": "fixture memory", "baseline_mb": 100.0, "peak_mb": 100.0 + batch * size / 8,
              "allocated_mb": batch * size / 8 * (0.8 if fmt == "onnx" else 1.0)}
    top1 = 100.0 if precision == "fp32" else 96.875 if fmt == "onnx" else 100.0
    return results.record(
        config, "ok", timing=_timing(median),
        throughput={"model_fps": batch / median * 1e3,
                    "end_to_end_fps": batch / median * 1e3 * 0.7 if loader == "real" else None},
        memory=memory,
        accuracy={"reference": "PyTorch fp32 eager, CPU", "images": 32, "batch_size": 4,
                  "max_abs_diff": 1e-5 if precision == "fp32" else 0.05, "mean_abs_diff": 1e-6,
                  "top1_agreement_pct": top1},
        environment=environment, artifact=None,
        backend={"math": "fp32 (strict, TF32 off)" if precision == "fp32" and device == "cuda" else precision})


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
                                results.validate(record)
                                path = root / RESULTS.format(host=host, format=fmt, device=device,
                                                             precision=precision, size=size, loader=loader,
                                                             batch=batch)
                                write_json(path, record)
                                paths.append(str(path))
    return paths


def model_provenance(root):
    path = root / "provenance.json"
    write_json(path, {"source": "random-fallback", "seed": 0,
                      "reason": "download of https://example.invalid/resnet18.pth failed: offline"})
    return path
