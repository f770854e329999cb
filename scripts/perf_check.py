"""Harness vs minimal loop on CUDA, between processes too (a benchmark, not a test).

    python scripts/perf_check.py --out DIR [--workspace W] [--size 224 --batch 64] [--repeats 3] [--only ...]

For each configuration (fp16, dummy input) it measures, in `--repeats` rounds, each round in fresh processes:
- the pipeline's own measurement (runner.measure_child in a forked child, the job process's NVML monitor, the
  measurement settings of config.yaml), and
- a minimal loop written directly against the library (warm-up, then synchronise + perf_counter around each
  of 300 calls; median), sharing no code with the harness.
It writes perf_check.md/json: every process's median, the median of medians and the spread of each side, and
their ratio. `--loaders` also measures what the loaders can deliver without a model (decode capacity).
Exports come from `--workspace` (a study's artifacts/) where they exist, else are made here.
"""
import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import yaml

from fmtbench import backends, data, export, gpus, isolation, model, runner, study, timing
from fmtbench.backends import onnx as onnx_backend

ROOT = Path(__file__).resolve().parent.parent
CONFIG = study.check(yaml.safe_load((ROOT / "config.yaml").read_text()), ROOT / "schemas" / "config.schema.yaml")
# Configurations beyond config.yaml's rows: torch.compile with the batch norms folded but without inductor's
# freezing (a frozen graph bypasses AOTAutograd's cache: every measuring process traces the model again).
EXTRA = {"inductor_folded": {"format": "inductor", "options": {"freezing": False, "fold_batchnorm": True}}}
NAMES = ["torch", "torch_cudagraph", "torchscript", "onnx", "inductor", "inductor_folded"]


def row(name: str) -> tuple[str, dict]:
    """The backend and settings of a row, exactly as the workflow derives them (study.format_options)."""
    config = {**CONFIG, "variants": {**CONFIG["variants"], **EXTRA}}
    return study.backend_of(config, name), study.format_options(config, name)


def minimal_loop(call, warmup=50, iters=300):
    import torch
    for _ in range(warmup):
        call()
    torch.cuda.synchronize()
    times = []
    for _ in range(iters):
        torch.cuda.synchronize()
        start = time.perf_counter()
        call()
        torch.cuda.synchronize()
        times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times)


def minimal_call(name, weights, artifact, size, batch, options):
    """The configuration written plainly against its library."""
    import torch
    x = torch.randn(batch, 3, size, size, device="cuda").half().to(memory_format=torch.channels_last)
    torch.backends.cudnn.benchmark = True
    if name in ("torch", "torch_cudagraph"):
        net = model.build(weights).cuda().half().to(memory_format=torch.channels_last)
        if name == "torch":
            return lambda: net(x)
        static = x.clone()
        stream = torch.cuda.Stream()
        stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(stream), torch.inference_mode():
            for _ in range(3):
                net(static)
        torch.cuda.current_stream().wait_stream(stream)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph), torch.inference_mode():
            net(static)
        return graph.replay
    if name == "torchscript":
        net = torch.jit.optimize_for_inference(torch.jit.load(str(artifact), map_location="cuda"))
        return lambda: net(x)
    if name.startswith("inductor"):
        import os

        import torch._inductor.config
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = str(Path(artifact, "inductor").resolve())
        os.environ["TRITON_CACHE_DIR"] = str(Path(artifact, "triton").resolve())
        torch._inductor.config.freezing = bool(options["freezing"])
        net = model.build(weights)
        if options["fold_batchnorm"]:
            from torch.fx.experimental.optimization import fuse
            net = fuse(net)
        net = torch.compile(net.cuda().half().to(memory_format=torch.channels_last), mode=options["mode"])
        torch._dynamo.mark_dynamic(x, 0, min=min(CONFIG["batch_sizes"]), max=max(CONFIG["batch_sizes"]))

        def call():
            with torch.no_grad():
                return net(x)
        return call
    import numpy as np
    import onnxruntime as ort
    session = ort.InferenceSession(str(artifact), providers=[("CUDAExecutionProvider", {
        "cudnn_conv_algo_search": "EXHAUSTIVE", "prefer_nhwc": "1"}), "CPUExecutionProvider"])
    xc = x.contiguous()
    out = torch.empty(batch, onnx_backend.output_classes(session), dtype=torch.float16, device="cuda")
    binding = session.io_binding()
    binding.bind_input("input", "cuda", 0, np.float16, list(xc.shape), xc.data_ptr())
    binding.bind_output("logits", "cuda", 0, np.float16, list(out.shape), out.data_ptr())
    return lambda: session.run_with_iobinding(binding)


def measure_minimal(name, weights, artifact, size, batch, options):
    import torch
    with torch.inference_mode(not name.startswith("inductor")):
        return minimal_loop(minimal_call(name, weights, artifact, size, batch, options))


def harness_job(name, backend, options, weights, artifact, provenance, size, batch) -> runner.JobRequest:
    return runner.JobRequest(
        format=name, backend=backend, device="cuda", precision="fp16", image_size=size, host="perf",
        batch_sizes=tuple(sorted(CONFIG["batch_sizes"])), loaders=("dummy",), weights=str(weights), manifest=None,
        reference=None, artifact=str(artifact) if artifact else None,
        provenance=str(provenance) if provenance else None,
        measurement=timing.Settings.from_config({"repeats": 1, "target_ci": 0, **CONFIG["measurement"]["cuda"]}),
        noisy_iqr_ratio=0.1, unstable_spread=0.05, loader_workers=0, threads=None,
        options={**options, **({"prefer_nhwc": True} if backend == "onnx" else {})})


def artifact_for(name, backend, options, weights, size, workspace, scratch):
    spec = backends.spec(backend)
    if not spec.artifact:
        return None, None
    path = study.export_path(backend, "fp16", "cuda", size)
    if workspace and name not in EXTRA and Path(workspace, path).exists():
        artifact = Path(workspace, path)
        return artifact, Path(study.provenance_path(str(artifact)))
    device, size_key = study.export_keys(backend, "cuda", size)
    artifact = Path(scratch, f"{name}.{spec.artifact.ext}")
    provenance = Path(scratch, f"{name}.json")
    record = export.run(backend, "fp16", device, size_key, weights, CONFIG["batch_sizes"], options, artifact,
                        provenance)
    if record["status"] != "ok":
        raise RuntimeError(f"export: {record['reason']}")
    return artifact, provenance


def spread(values):
    return (max(values) - min(values)) / statistics.median(values) if len(values) > 1 else 0.0


def loader_only(loader_name, manifest, size, batch, workers, seconds=3.0):
    """Batches per second a loader delivers with no model: its capacity, measured on its own."""
    source = data.loader(loader_name).open(data.SourceRequest("cuda", size, batch, workers, manifest,
                                                              data.InputFormat("float16", True)))
    for _ in range(2 * max(workers, 1)):
        source.next()
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        source.next()
        count += 1
    import torch
    torch.cuda.synchronize()
    elapsed = time.perf_counter() - start
    source.close()
    return {"images_per_s": count * batch / elapsed, "batches": count, "workers": workers}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", required=True)
    parser.add_argument("--workspace", help="a study's working directory: its weights and exports are reused")
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--only", nargs="*", default=NAMES, choices=NAMES)
    parser.add_argument("--loaders", action="store_true", help="also measure the loaders without a model")
    parser.add_argument("--workers", type=int, default=6, help="DataLoader workers for --loaders")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp())
    weights = Path(args.workspace, "artifacts/model/resnet18.pt") if args.workspace else scratch / "w.pt"
    if not weights.exists():  # in a process of its own: this one forks measuring children and runs no torch op
        isolation.run_interpreter("fmtbench.model:save_random", str(weights))
    rows, ready = {}, {}
    for name in args.only:
        backend, options = row(name)
        try:
            ready[name] = (backend, options, *artifact_for(name, backend, options, weights, args.size,
                                                           args.workspace, scratch))
            rows[name] = {"configuration": name, "harness_ms": [], "minimal_ms": [], "errors": []}
        except Exception as err:  # noqa: BLE001 - one configuration's failure is its row
            rows[name] = {"configuration": name, "errors": [f"{type(err).__name__}: {err}"]}
        print(name, "ready" if name in ready else rows[name]["errors"], flush=True)
    monitor = gpus.DeviceMonitor()
    for round_index in range(args.repeats):
        for name in (list(ready) if round_index % 2 == 0 else list(ready)[::-1]):
            backend, options, artifact, provenance = ready[name]
            job = harness_job(name, backend, options, weights, artifact, provenance, args.size, args.batch)
            harness = isolation.run_forked(runner.measure_child, job, "dummy", args.batch, False, timeout=600,
                                           on_mark=monitor.on_mark)
            monitor.reset()
            minimal = isolation.run_forked(measure_minimal, name, weights, artifact, args.size, args.batch, options,
                                           timeout=600)
            for side, outcome, value in (("harness_ms", harness, lambda o: o.value["timing"].summary.median),
                                         ("minimal_ms", minimal, lambda o: o.value)):
                if outcome.status == "ok":
                    rows[name][side].append(value(outcome))
                else:
                    rows[name]["errors"].append(f"{side} round {round_index + 1}: {outcome.reason}")
            if harness.status == "ok":
                rows[name].setdefault("harness_first_run_ms", []).append(harness.value["first_run_ms"])
                rows[name].setdefault("harness_stages_s", []).append(harness.stages)
            print(rows[name], flush=True)
    for entry in rows.values():
        if entry.get("harness_ms") and entry.get("minimal_ms"):
            entry["harness_median_ms"] = statistics.median(entry["harness_ms"])
            entry["minimal_median_ms"] = statistics.median(entry["minimal_ms"])
            entry["harness_spread"] = spread(entry["harness_ms"])
            entry["minimal_spread"] = spread(entry["minimal_ms"])
            entry["harness_over_loop"] = entry["harness_median_ms"] / entry["minimal_median_ms"]
    result = {"size": args.size, "batch": args.batch, "repeats": args.repeats, "rows": list(rows.values())}
    if args.loaders and args.workspace:
        manifest = str(Path(args.workspace, "artifacts/images/manifest.json"))
        result["loaders"] = {}
        for loader_name in ("real", "real_gpu_decode"):
            outcome = isolation.run_forked(loader_only, loader_name, manifest, args.size, args.batch, args.workers,
                                           timeout=300)
            result["loaders"][loader_name] = outcome.value if outcome.status == "ok" else outcome.reason
            print(loader_name, result["loaders"][loader_name], flush=True)
    (out / "perf_check.json").write_text(json.dumps(result, indent=2, default=str))
    lines = [f"| configuration (fp16, {args.size}², batch {args.batch}) | harness ms per process | harness median "
             "(spread) | minimal loop ms per process | loop median (spread) | harness / loop |",
             "|---|---|---|---|---|---|"]
    for entry in rows.values():
        if "harness_over_loop" not in entry:
            lines.append(f"| {entry['configuration']} | – | – | – | – | {'; '.join(entry['errors'])[:300]} |")
            continue
        lines.append(f"| {entry['configuration']} | {', '.join(f'{v:.3f}' for v in entry['harness_ms'])} | "
                     f"{entry['harness_median_ms']:.3f} ({entry['harness_spread']:.1%}) | "
                     f"{', '.join(f'{v:.3f}' for v in entry['minimal_ms'])} | {entry['minimal_median_ms']:.3f} "
                     f"({entry['minimal_spread']:.1%}) | {entry['harness_over_loop']:.3f} |")
    (out / "perf_check.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    sys.exit(main())
