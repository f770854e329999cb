"""Harness vs minimal loop on CUDA (a benchmark, not a test): the pipeline's measurement must be within 5 %.

    python scripts/perf_check.py --out DIR [--size 224 --batch 64]

For each target configuration it times a minimal loop written directly against the library (warm-up,
then synchronise + perf_counter around each call) and the pipeline's own harness (runner.measure_child in
a fresh process, dummy loader), and writes perf_check.md/json with both medians and their ratio.
"""
import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import yaml  # noqa: E402

from fmtbench import export, model, runner, study, timing  # noqa: E402

TARGETS_MS = {"torch": 2.7, "torch_cudagraph": 1.8, "torchscript": 1.9, "onnx": 3.0, "inductor": 1.6}
# Variants (torch_cudagraph) are the study's own: the backend and settings config.yaml gives them.
CONFIG = yaml.safe_load((Path(__file__).resolve().parent.parent / "config.yaml").read_text())


def variant_of(name: str) -> tuple[str, dict]:
    return study.backend_of(CONFIG, name), CONFIG["variants"].get(name, {}).get("options", {})


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


def minimal_call(name, weights, artifact, size, batch):
    """The configuration written plainly against its library, sharing no code with the harness."""
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
    if name == "inductor":
        net = torch._inductor.aoti_load_package(str(artifact))
        return lambda: net(x)
    import numpy as np
    import onnxruntime as ort
    session = ort.InferenceSession(str(artifact), providers=[("CUDAExecutionProvider", {
        "cudnn_conv_algo_search": "EXHAUSTIVE", "prefer_nhwc": "1"}), "CPUExecutionProvider"])
    xc = x.contiguous()
    out = torch.empty(batch, 1000, dtype=torch.float16, device="cuda")
    binding = session.io_binding()
    binding.bind_input("input", "cuda", 0, np.float16, list(xc.shape), xc.data_ptr())
    binding.bind_output("logits", "cuda", 0, np.float16, list(out.shape), out.data_ptr())
    return lambda: session.run_with_iobinding(binding)


def onnx_ablation(artifact, size, batch):
    """Which CUDA provider option moves ORT's time: each set timed with the same minimal loop."""
    import numpy as np
    import onnxruntime as ort
    import torch
    from fmtbench.backends import onnx as onnx_backend
    pipeline = onnx_backend.cuda_provider_options(True, onnx_backend.SPEC.options, "fp16")
    trials = {"pipeline": pipeline,
              "pipeline, nchw": {**pipeline, "prefer_nhwc": "0"},
              "pipeline, no arena setting": {k: v for k, v in pipeline.items() if k != "arena_extend_strategy"},
              "pipeline + use_tf32=0 (strict-fp32 switch on an fp16 model)": {**pipeline, "use_tf32": "0"},
              "minimal (EXHAUSTIVE + nhwc)": {"cudnn_conv_algo_search": "EXHAUSTIVE", "prefer_nhwc": "1"},
              "DEFAULT search (the seed's)": {"cudnn_conv_algo_search": "DEFAULT", "prefer_nhwc": "1"}}
    x = torch.randn(batch, 3, size, size, device="cuda").half()
    out = torch.empty(batch, 1000, dtype=torch.float16, device="cuda")
    medians = {}
    for label, options in trials.items():
        session = ort.InferenceSession(str(artifact), sess_options=onnx_backend.session_options(None),
                                       providers=[("CUDAExecutionProvider", options), "CPUExecutionProvider"])
        binding = session.io_binding()
        binding.bind_input("input", "cuda", 0, np.float16, list(x.shape), x.data_ptr())
        binding.bind_output("logits", "cuda", 0, np.float16, list(out.shape), out.data_ptr())
        medians[label] = minimal_loop(lambda: session.run_with_iobinding(binding))
    return medians


def harness_median(name, weights, artifact, provenance, manifest, reference, size, batch):
    backend, options = variant_of(name)
    job = runner.JobRequest(
        format=name, backend=backend, device="cuda", precision="fp16", image_size=size, host="perf",
        batch_sizes=(batch,), loaders=("dummy",), weights=str(weights), manifest=str(manifest),
        reference=str(reference), artifact=str(artifact) if artifact else None,
        provenance=str(provenance) if provenance else None,
        measurement=timing.Settings(warmup_iters=50, warmup_seconds=0.5, min_iters=300, min_seconds=1.0,
                                    max_seconds=10.0),
        noisy_iqr_ratio=0.1, loader_workers=0, threads=None,
        options={**study.spec(backend).options, **options, **({"prefer_nhwc": True} if backend == "onnx" else {})})
    outcome = runner.run_isolated(runner.measure_child, job, "dummy", batch)
    if outcome.status != "ok":
        raise RuntimeError(f"{name}: {outcome.status}: {outcome.reason}")
    return outcome.value["timing"]["median"]


def measure_minimal(name, weights, artifact, size, batch):
    import torch
    with torch.inference_mode():
        return minimal_loop(minimal_call(name, weights, artifact, size, batch))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", required=True)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--only", nargs="*", default=list(TARGETS_MS), choices=list(TARGETS_MS))
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp())
    weights = work / "w.pt"
    model.save(model.resolve("random", seed=0), weights)
    rows = []
    for name in args.only:
        backend = study.backend_of(CONFIG, name)
        artifact = provenance = None
        spec = study.spec(backend)
        if spec.export_ext:
            device, size_key = study.export_keys(backend, "cuda", args.size)
            artifact = work / f"{backend}.{spec.export_ext}"
            provenance = work / f"{backend}.json"
            # export.run compiles in a subprocess of its own: this process never initialises CUDA.
            record = export.run(backend, "fp16", device, size_key, weights, [args.batch], dict(spec.options),
                                artifact, provenance)
            error = record["reason"] if record["status"] != "ok" else None
            if error:
                rows.append({"configuration": name, "error": f"export: {error}"})
                print(rows[-1], flush=True)
                continue
        minimal = runner.run_isolated(measure_minimal, name, weights, artifact, args.size, args.batch)
        if minimal.status != "ok":
            rows.append({"configuration": name, "error": f"minimal loop: {minimal.reason}"})
            print(rows[-1], flush=True)
            continue
        try:
            harness = harness_median(name, weights, artifact, provenance, None, None, args.size, args.batch)
        except RuntimeError as err:
            rows.append({"configuration": name, "error": f"harness: {err}"})
            print(rows[-1], flush=True)
            continue
        if backend == "onnx":
            ablation = runner.run_isolated(onnx_ablation, artifact, args.size, args.batch)
            print("ORT provider-option ablation (minimal loop, ms):", ablation.value or ablation.reason, flush=True)
            (out / "onnx_ablation.json").write_text(json.dumps(ablation.value or ablation.reason, indent=2))
        rows.append({"configuration": name, "target_ms": TARGETS_MS[name], "minimal_loop_ms": minimal.value,
                     "harness_ms": harness, "harness_over_loop": harness / minimal.value,
                     "meets_target": harness <= TARGETS_MS[name]})
        print(rows[-1], flush=True)
    (out / "perf_check.json").write_text(json.dumps(rows, indent=2))
    lines = ["| configuration (fp16, %d², batch %d) | target ms | minimal loop ms | harness ms | harness / loop |"
             % (args.size, args.batch), "|---|---|---|---|---|"]
    for row in rows:
        if "error" in row:
            lines.append(f"| {row['configuration']} | – | – | – | {row['error']} |")
        else:
            lines.append(f"| {row['configuration']} | ≤ {row['target_ms']} | {row['minimal_loop_ms']:.3f} | "
                         f"{row['harness_ms']:.3f} | {row['harness_over_loop']:.3f} |")
    (out / "perf_check.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
