"""What the harness adds to a figure, if anything: the measuring process against a plain loop, interleaved on the
same clock, with one harness element at a time switched off (a benchmark, not a test; CUDA).

    python tools/ablation.py --workspace W --out DIR [--rounds 2] [--anchors RESULTS ...]

W is a study's working directory (its weights, image manifest and exports are used). Per row (format, precision,
224², batch): each round runs the plain loop (tools/plain_loop.py, in a process of its own that stays up), then
a measuring process of the study's harness (fmtbench.measure, exactly as a benchmark job forks it, under the job
process's monitors) with one variant, then the loop again, and so on through the variants:

- `harness`: as a study measures the row (a model-alone process; here the row alone in it);
- `no_nvml_sampling`, `no_contention_watch`, `unpinned`, `gc_on`: one part of the harness off (or on);
- `workers_alive`: the real loader measured first in the same process, its workers alive during the row;
- `second_in_group`: the row after the other batch size in its process (a study's rotated order);
- ONNX Runtime rows also `arena_same_as_requested` (the CUDA arena growing by what is requested, not as ORT's
  default; the 2026-12-02 H200 run measured the other way round, `arena_next_power_of_two` against a harness that
  then grew it as requested).

`--anchors RESULTS...`: then the plain loop, a few segments, for every CUDA model-alone row of those result
folders, against each row's figures. Writes DIR/ablation.jsonl (every segment), DIR/ablation.md (the tables).
The measuring processes here use the study's settings with `max_seconds` capped at 1 s.
"""
import argparse
import json
import os
import sys
import time
from dataclasses import asdict, replace
from pathlib import Path

import yaml
from ablation_tables import summarise
from plain_loop import Server

from fmtbench import paths
from fmtbench.atomic import read_json
from fmtbench.measure import probe
from fmtbench.settings import Harness, Settings, for_device
from fmtbench.workflow import hardware, plan

ROOT = Path(__file__).resolve().parent.parent
CONFIG = plan.check(yaml.safe_load((ROOT / "config.yaml").read_text()), ROOT / "schemas" / "config.schema.yaml")
ROWS = [("torch", "fp16", 32), ("torchscript", "fp16", 32), ("torch_autocast", "fp16", 32), ("torch", "fp32", 64),
        ("onnx", "fp16", 64)]
VARIANTS = {"harness": {}, "no_nvml_sampling": {"device_memory_sampling": False},
            "no_contention_watch": {"contention_watch": False}, "unpinned": {"pin_cores": False},
            "gc_on": {"gc_during_measurement": True}, "workers_alive": {"loaders_apart": False},
            "second_in_group": {}}
ORT_VARIANTS = ["harness", "unpinned", "no_nvml_sampling", "arena_same_as_requested"]
SIZE, BATCHES = 224, (32, 64)
DEVICE = "cuda"  # --device cpu: a smoke run of the script on a machine without a GPU (torch rows only)


def request_for(name, precision, batch, workspace: Path, variant: str) -> probe.Request:
    backend, options = plan.backend_of(CONFIG, name), dict(plan.format_options(CONFIG, name))
    if backend == "onnx":
        options["prefer_nhwc"] = precision == "fp16"
        if variant == "arena_same_as_requested":
            options["arena_extend_strategy"] = "kSameAsRequested"
    artifact = plan.export_path(backend, precision, DEVICE, SIZE)
    measurement = Settings.from_json(for_device(CONFIG["measurement"], "cuda")).with_processes(1)
    measurement = replace(measurement, max_seconds=min(1.0, measurement.max_seconds),
                          harness=asdict(Harness(**VARIANTS.get(variant, {}))))
    workers = max(1, min(CONFIG["loader"]["cuda_workers"], len(cores(True)) - 1))
    return probe.Request(format=name, backend=backend, device=DEVICE, precision=precision, image_size=SIZE,
                   host="ablation", batch_sizes=BATCHES, loaders=("real", "dummy"),
                   weights=str(workspace / paths.MODEL_WEIGHTS), manifest=str(workspace / paths.MANIFEST),
                   artifact=str(workspace / artifact) if artifact else None,
                   provenance=str(workspace / paths.provenance(artifact)) if artifact else None,
                   measurement=measurement, loader_workers=workers, options=options,
                   threads=len(cores(True)) if DEVICE == "cpu" else None)


def cores(pinned: bool) -> list[int]:
    return hardware.core_plan(DEVICE == "cuda", CONFIG["cpu_threads"])[DEVICE] if pinned else hardware.usable_cores()


def harness_segment(name, precision, batch, workspace, variant) -> dict:
    """One measuring process of the harness, as a benchmark job forks it; the row's figures from it."""
    request = request_for(name, precision, batch, workspace, variant)
    other = next(b for b in BATCHES if b != batch)
    target = ("dummy", batch)
    keys = {"workers_alive": [("real", batch), target],
            "second_in_group": [("dummy", other), target]}.get(variant, [target])
    everything = set(os.sched_getaffinity(0))
    os.sched_setaffinity(0, cores(request.measurement.switches.pin_cores))
    try:
        measured = probe.one_process(request, keys)
    finally:
        os.sched_setaffinity(0, everything)
    reading = measured.readings.get(target)
    if reading is None:
        return {"error": measured.error or measured.failures.get(target, "not measured")}
    timing = reading.timing
    return {"latency_ms": timing.summary.median, "throughput_fps": timing.throughput.images_per_s
            if timing.throughput else None, "gpu_busy_share": timing.gpu_busy_share,
            "memory_steady_mb": reading.memory.steady_mb, "memory_first_call_mb": reading.memory.first_call_peak_mb,
            "contended": (reading.contention or {}).get("contended"), "calls": timing.summary.count,
            "at": time.time()}


def loop_spec(name, precision, batch, workspace: Path, artifact=None, provider_options=None, size=None) -> dict:
    size = size or SIZE
    export = plan.export_path(plan.backend_of(CONFIG, name), precision, DEVICE, size)
    path = artifact or (export and str(workspace / export))
    return {"name": name, "precision": precision, "size": size, "batch": batch, "batch_sizes": list(BATCHES),
            "device": DEVICE,
            "weights": str(workspace / paths.MODEL_WEIGHTS), "artifact": path, "provider_options": provider_options}


def write(out: Path, record: dict) -> None:
    with open(out / "ablation.jsonl", "a", encoding="utf-8") as handle:
        handle.write(json.dumps(record) + "\n")
    print(json.dumps(record), flush=True)


def ablate(server: Server, workspace: Path, out: Path, rounds: int) -> None:
    """Round after round, row after row (a run cut short still has every row of its first rounds): the plain loop,
    then the harness with one variant, then the loop again, through the row's variants."""
    rows = []
    for name, precision, batch in ROWS:
        key = f"{name}-{precision}-{batch}"
        try:
            server.ask("make", key, loop_spec(name, precision, batch, workspace))
            rows.append((key, name, precision, batch))
        except RuntimeError as err:
            write(out, {"row": key, "kind": "loop", "error": str(err)})
    for round_index in range(rounds):
        for key, name, precision, batch in rows:
            variants = ORT_VARIANTS if plan.backend_of(CONFIG, name) == "onnx" else list(VARIANTS)
            for variant in (variants if round_index % 2 == 0 else variants[::-1]):
                write(out, {"row": key, "kind": "loop", "round": round_index, **server.ask("segment", key, 200)})
                try:
                    figures = harness_segment(name, precision, batch, workspace, variant)
                except Exception as err:  # noqa: BLE001 - recorded, the ablation goes on
                    figures = {"error": f"{type(err).__name__}: {err}"[:500]}
                write(out, {"row": key, "kind": "harness", "variant": variant, "round": round_index, **figures})
            write(out, {"row": key, "kind": "loop", "round": round_index, **server.ask("segment", key, 200)})


def anchors(server: Server, workspace: Path, out: Path, results: list[str], segments: int) -> None:
    """The plain loop for every CUDA model-alone row of `results`, beside its figures."""
    rows = {}
    for folder in results:
        for path in sorted(Path(folder).rglob("*.json")):
            row = read_json(path)
            config = row.get("config") or {}
            if row.get("status") != "ok" or config.get("device") != DEVICE or config.get("loader") != "dummy":
                continue
            rows.setdefault((config["format"], config["precision"], config["image_size"], config["batch_size"]),
                            []).append(
                {"set": folder, "latency_ms": row["timing"]["median"],
                 "throughput_fps": row["timing"]["throughput_fps"],
                 "host_bound": row["timing"].get("host_bound"),
                 "artifact": (row.get("artifact") or {}).get("path"),
                 "prefer_nhwc": (row.get("backend") or {}).get("prefer_nhwc")})
    for (name, precision, size, batch), figures in sorted(rows.items()):
        key = f"anchor-{name}-{precision}-{size}-{batch}"
        artifact = next((Path(f["artifact"]) for f in figures if f["artifact"]), None)
        if artifact is not None and not artifact.is_absolute():
            artifact = workspace / artifact
        provider = {"prefer_nhwc": figures[0]["prefer_nhwc"]} if figures[0]["prefer_nhwc"] is not None else None
        try:
            server.ask("make", key, loop_spec(name, precision, batch, workspace, artifact and str(artifact), provider,
                                              size))
            loops = [server.ask("segment", key, 200) for _ in range(segments)]
        except RuntimeError as err:
            write(out, {"row": key, "kind": "anchor", "error": str(err)})
            continue
        write(out, {"row": key, "kind": "anchor", "format": name, "precision": precision, "size": size,
                    "batch": batch, "loops": loops, "rows": figures})


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--workspace", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--anchors", nargs="*", default=[])
    parser.add_argument("--anchor-segments", type=int, default=3)
    parser.add_argument("--summary-only", action="store_true")
    parser.add_argument("--device", default="cuda", choices=["cuda", "cpu"])
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--rows", nargs="*", help="format:precision:batch, e.g. torch:fp16:32 (default: the five)")
    args = parser.parse_args()
    global DEVICE, ROWS, SIZE
    DEVICE, SIZE = args.device, args.size
    if args.rows:
        ROWS = [(name, precision, int(batch)) for name, precision, batch in (row.split(":") for row in args.rows)]
    out, workspace = Path(args.out).resolve(), Path(args.workspace).resolve()
    out.mkdir(parents=True, exist_ok=True)
    os.chdir(workspace)  # as a benchmark job runs: the manifest's image paths are the workspace's
    if not args.summary_only:
        import importlib
        for module in ("torch", "torchvision", "onnxruntime"):  # as a job process does: its children inherit them
            importlib.import_module(module)
        server = Server()
        try:
            if args.anchors:  # first: the plain loop beside every row of the studies, cheaply
                anchors(server, workspace, out, args.anchors, args.anchor_segments)
            if args.rounds:
                ablate(server, workspace, out, args.rounds)
        finally:
            server.stop()
    text = summarise(out, CONFIG["measurement"]["host_bound_share"])
    (out / "ablation.md").write_text(text, encoding="utf-8")
    print(text)


if __name__ == "__main__":
    sys.exit(main())
