"""Grouped vs fresh measuring processes, and harness vs minimal loop, on CUDA (a benchmark, not a test).

    python tools/perf_check.py --out DIR [--workspace W] [--size 224 --batch 64] [--repeats 3] [--only ...]

For one configuration of each format (fp16, dummy input, `--size`, `--batch`) it measures, in `--repeats` rounds
(each side in its own fresh processes, the sides' order alternating between rounds):
- **grouped**: the pipeline's measuring process as a study runs it (measure.measuring_process.measure_group in a
  forked child, the job process's NVML monitor, config.yaml's settings) over every batch size of config.yaml, the
  checked one among them at a position that moves between rounds: what a row of the study reads;
- **fresh**: the same code with the checked configuration alone in its process (what one process per
  configuration read);
- **minimal loop** (tools/plain_loop.py): written directly against the library, sharing no code with the
  harness: warm-up, then latency (synchronise + perf_counter around each of 300 calls; median) and throughput
  (blocks of calls, one synchronisation each; median block rate).
Pass/fail per format: grouped and fresh medians (latency and throughput) within the larger of the two sides'
spreads; memory within 5 % or 20 MB. It writes perf_check.md/json. `--loaders` also measures what the loaders
deliver without a model. Exports come from `--workspace` (a study's artifacts/) where they exist, else are made
here.
"""
import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import plain_loop
import yaml

from fmtbench import backends, data, export, isolation, paths
from fmtbench.measure import probe
from fmtbench.settings import Settings, for_device
from fmtbench.workflow import plan

ROOT = Path(__file__).resolve().parent.parent
CONFIG = plan.check(yaml.safe_load((ROOT / "config.yaml").read_text()), ROOT / "schemas" / "config.schema.yaml")
# Configurations beyond config.yaml's rows: torch.compile with the batch norms folded but without inductor's
# freezing (a frozen graph bypasses AOTAutograd's cache: every measuring process traces the model again).
EXTRA = {}
NAMES = ["torch", "torch_cudagraph", "torch_autocast", "torchscript", "onnx", "onnx_cudagraph", "inductor"]
MEMORY_BOUND = (0.05, 20.0)   # memory: grouped within 5 % or 20 MB of fresh, whichever is larger
LOOP_CALLS = 300


def row(name: str) -> tuple[str, dict]:
    """The backend and settings of a row, exactly as the workflow derives them (plan.format_options)."""
    config = {**CONFIG, "variants": {**CONFIG["variants"], **EXTRA}}
    return plan.backend_of(config, name), plan.format_options(config, name)


def measure_minimal(name, weights, artifact, size, batch, options):
    """The plain loop (tools/plain_loop.py): (median latency ms, median back-to-back images / s)."""
    spec = {"name": "onnx" if name == "onnx_cudagraph" else name, "precision": "fp16", "size": size, "batch": batch,
            "batch_sizes": CONFIG["batch_sizes"], "weights": str(weights), "artifact": artifact and str(artifact),
            "provider_options": {"enable_cuda_graph": "1"} if name == "onnx_cudagraph" else None}
    measured = plain_loop.segment(plain_loop.make_call(spec), batch, calls=LOOP_CALLS)
    return measured["latency_ms"], measured["throughput_fps"]


def harness_request(name, backend, options, weights, artifact, provenance, size, batches) -> probe.Request:
    measurement = Settings.from_json(for_device(CONFIG["measurement"], "cuda")).with_processes(1)
    return probe.Request(format=name, backend=backend, device="cuda", precision="fp16", image_size=size, host="perf",
                   batch_sizes=tuple(sorted(batches)), weights=str(weights),
                   artifact=str(artifact) if artifact else None, provenance=str(provenance) if provenance else None,
                   measurement=measurement, options={**options, **({"prefer_nhwc": True} if backend == "onnx" else {})})


def harness(request, batches, batch) -> dict:
    """One measuring process over `batches` (in this order); the checked batch's figures and the process's."""
    measured = probe.one_process(request, [("dummy", b) for b in batches], checks=False)
    value = measured.readings.get(("dummy", batch))
    if value is None:
        return {"error": measured.error or measured.failures.get(("dummy", batch), "not measured")}
    timed = value.timing
    return {"latency_ms": timed.summary.median, "throughput_fps": timed.throughput.images_per_s,
            "memory_mb": value.memory.allocated_mb, "load_mb": value.memory.load_mb,
            "first_run_ms": value.first_run_ms, "position": batches.index(batch) + 1,
            "configurations": len(batches), "seconds": measured.seconds}


def artifact_for(name, backend, options, weights, size, workspace, scratch):
    spec = backends.spec(backend)
    if not spec.artifact:
        return None, None
    path = plan.export_path(backend, "fp16", "cuda", size)
    if workspace and name not in EXTRA and Path(workspace, path).exists():
        artifact = Path(workspace, path)
        return artifact, Path(paths.provenance(artifact))
    device, size_key = plan.export_keys(backend, "cuda", size)
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
    source.start()
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


def _side(entries, key):
    values = [entry[key] for entry in entries if key in entry]
    return (statistics.median(values), spread(values)) if values else (None, None)


def verdict(row) -> dict:
    """Grouped vs fresh: medians within the larger spread; memory within 5 % or 20 MB."""
    checks = {}
    for key in ("latency_ms", "throughput_fps"):
        (grouped, g_spread), (fresh, f_spread) = _side(row["grouped"], key), _side(row["fresh"], key)
        if grouped is None or fresh is None:
            continue
        difference = abs(grouped - fresh) / fresh
        checks[key] = {"grouped": grouped, "fresh": fresh, "difference": difference,
                       "allowed": max(g_spread, f_spread), "ok": difference <= max(g_spread, f_spread)}
    (grouped, _), (fresh, _) = _side(row["grouped"], "memory_mb"), _side(row["fresh"], "memory_mb")
    if grouped is not None and fresh is not None:
        allowed = max(MEMORY_BOUND[0] * fresh, MEMORY_BOUND[1])
        checks["memory_mb"] = {"grouped": grouped, "fresh": fresh, "difference": abs(grouped - fresh),
                               "allowed": allowed, "ok": abs(grouped - fresh) <= allowed}
    loop = [entry for entry in row["minimal"] if "latency_ms" in entry]
    if loop:
        checks["harness_over_loop"] = {
            "latency": _side(row["grouped"], "latency_ms")[0] / statistics.median(e["latency_ms"] for e in loop),
            "throughput": _side(row["grouped"], "throughput_fps")[0]
            / statistics.median(e["throughput_fps"] for e in loop)}
    return checks


def _cells(entries, key, digits=".3f"):
    values = [entry[key] for entry in entries if key in entry]
    if not values:
        return "–"
    every = ", ".join(f"{v:{digits}}" for v in values)
    return f"{statistics.median(values):{digits}} ({spread(values):.1%}; {every})"


def write_report(out: Path, result: dict) -> str:
    lines = [f"fp16, {result['size']}², batch {result['batch']}, dummy input; grouped = the checked configuration "
             f"measured among the study's batch sizes {result['batch_sizes']} in one process (its position moving "
             "between rounds), fresh = alone in its process; each side in its own processes, interleaved. Medians "
             "of the processes (spread; every process).", "",
             "| format | latency ms grouped | latency ms fresh | img/s grouped | img/s fresh | memory MB grouped | "
             "memory MB fresh | within bounds | harness / loop (latency, img/s) |",
             "|---|---|---|---|---|---|---|---|---|"]
    for row in result["rows"]:
        if row.get("checks") is None:
            lines.append(f"| {row['configuration']} | {'; '.join(row['errors'])[:300]} | | | | | | no | |")
            continue
        checks = row["checks"]
        failed = [name for name, check in checks.items() if name != "harness_over_loop" and not check["ok"]]
        loop = checks.get("harness_over_loop")
        loop_text = f"{loop['latency']:.3f}, {loop['throughput']:.3f}" if loop else "–"
        grouped, fresh = row["grouped"], row["fresh"]
        lines.append(
            f"| {row['configuration']} | {_cells(grouped, 'latency_ms')} | {_cells(fresh, 'latency_ms')} "
            f"| {_cells(grouped, 'throughput_fps', '.0f')} | {_cells(fresh, 'throughput_fps', '.0f')} "
            f"| {_cells(grouped, 'memory_mb', '.1f')} | {_cells(fresh, 'memory_mb', '.1f')} "
            f"| {'NO: ' + ', '.join(failed) if failed else 'yes'} | {loop_text} |")
    text = "\n".join(lines) + "\n"
    (out / "perf_check.md").write_text(text)
    (out / "perf_check.json").write_text(json.dumps(result, indent=2, default=str))
    return text


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
    weights = Path(args.workspace, paths.MODEL_WEIGHTS) if args.workspace else scratch / "w.pt"
    if not weights.exists():  # in a process of its own: this one forks measuring children and runs no torch op
        isolation.run_interpreter("fmtbench.model:save_random", str(weights))
    batches = sorted(set(CONFIG["batch_sizes"]) | {args.batch})
    rows, ready = {}, {}
    for name in args.only:
        backend, options = row(name)
        try:
            ready[name] = (backend, options, *artifact_for(name, backend, options, weights, args.size,
                                                           args.workspace, scratch))
            rows[name] = {"configuration": name, "grouped": [], "fresh": [], "minimal": [], "errors": []}
        except Exception as err:  # noqa: BLE001 - one configuration's failure is its row
            rows[name] = {"configuration": name, "errors": [f"{type(err).__name__}: {err}"]}
        print(name, "ready" if name in ready else rows[name]["errors"], flush=True)
    for round_index in range(args.repeats):
        for name in (list(ready) if round_index % 2 == 0 else list(ready)[::-1]):
            backend, options, artifact, provenance = ready[name]
            request = harness_request(name, backend, options, weights, artifact, provenance, args.size, batches)
            grouped_order = probe.order([("dummy", b) for b in batches], round_index, args.repeats)
            sides = [("grouped", [b for _, b in grouped_order]), ("fresh", [args.batch])]
            for side, order in (sides if round_index % 2 == 0 else sides[::-1]):
                entry = harness(request, order, args.batch)
                (rows[name]["errors"].append(f"{side} round {round_index + 1}: {entry['error']}")
                 if "error" in entry else rows[name][side].append(entry))
            minimal = isolation.run_forked(measure_minimal, name, weights, artifact, args.size, args.batch, options,
                                           timeout=600)
            if minimal.status == "ok":
                rows[name]["minimal"].append({"latency_ms": minimal.value[0], "throughput_fps": minimal.value[1]})
            else:
                rows[name]["errors"].append(f"minimal round {round_index + 1}: {minimal.reason}")
            print(json.dumps(rows[name], default=str), flush=True)
    for entry in rows.values():
        if entry.get("grouped") and entry.get("fresh"):
            entry["checks"] = verdict(entry)
    result = {"size": args.size, "batch": args.batch, "batch_sizes": batches, "repeats": args.repeats,
              "settings": CONFIG["measurement"]["cuda"], "rows": list(rows.values())}
    if args.loaders and args.workspace:
        manifest = str(Path(args.workspace, paths.MANIFEST))
        result["loaders"] = {}
        for loader_name in ("real", "real_gpu_decode"):
            outcome = isolation.run_forked(loader_only, loader_name, manifest, args.size, args.batch, args.workers,
                                           timeout=300)
            result["loaders"][loader_name] = outcome.value if outcome.status == "ok" else outcome.reason
            print(loader_name, result["loaders"][loader_name], flush=True)
    print(write_report(out, result))


if __name__ == "__main__":
    sys.exit(main())
