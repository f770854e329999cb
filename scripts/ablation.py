"""What the harness adds to a figure, if anything: the measuring process against a plain loop, interleaved on the
same clock, with one harness element at a time switched off (a benchmark, not a test; CUDA).

    python scripts/ablation.py --workspace W --out DIR [--rounds 2] [--anchors RESULTS ...]

W is a study's working directory (its weights, image manifest and exports are used). Per row (format, precision,
224², batch): each round runs the plain loop (scripts/plain_loop.py, in a process of its own that stays up), then
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
import statistics
import sys
import time
from dataclasses import asdict, replace
from pathlib import Path

import yaml
from plain_loop import Server

from fmtbench import backends, hardware, paths, stats, study
from fmtbench.atomic import read_json
from fmtbench.measure.request import Request
from fmtbench.measure.schedule import Scheduler
from fmtbench.report.replicate import PLAIN_LOOP
from fmtbench.settings import Harness, Settings, for_device

ROOT = Path(__file__).resolve().parent.parent
CONFIG = study.check(yaml.safe_load((ROOT / "config.yaml").read_text()), ROOT / "schemas" / "config.schema.yaml")
ROWS = [("torch", "fp16", 32), ("torchscript", "fp16", 32), ("torch_autocast", "fp16", 32), ("torch", "fp32", 64),
        ("onnx", "fp16", 64)]
VARIANTS = {"harness": {}, "no_nvml_sampling": {"device_memory_sampling": False},
            "no_contention_watch": {"contention_watch": False}, "unpinned": {"pin_cores": False},
            "gc_on": {"gc_during_measurement": True}, "workers_alive": {"loaders_apart": False},
            "second_in_group": {}}
ORT_VARIANTS = ["harness", "unpinned", "no_nvml_sampling", "arena_same_as_requested"]
SIZE, BATCHES = 224, (32, 64)
DEVICE = "cuda"  # --device cpu: a smoke run of the script on a machine without a GPU (torch rows only)


def request_for(name, precision, batch, workspace: Path, variant: str) -> Request:
    backend, options = study.backend_of(CONFIG, name), dict(study.format_options(CONFIG, name))
    if backend == "onnx":
        options["prefer_nhwc"] = precision == "fp16"
        if variant == "arena_same_as_requested":
            options["arena_extend_strategy"] = "kSameAsRequested"
    artifact = study.export_path(backend, precision, DEVICE, SIZE)
    measurement = Settings.from_json(for_device(CONFIG["measurement"], "cuda")).with_processes(1)
    measurement = replace(measurement, max_seconds=min(1.0, measurement.max_seconds),
                          harness=asdict(Harness(**VARIANTS.get(variant, {}))))
    workers = max(1, min(CONFIG["loader"]["cuda_workers"], len(cores(True)) - 1))
    return Request(format=name, backend=backend, device=DEVICE, precision=precision, image_size=SIZE,
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
        scheduler = Scheduler(request, backends.spec(request.backend))
        outcome = scheduler.run_in_order(keys)
    finally:
        os.sched_setaffinity(0, everything)
    row = scheduler.rows[target]
    if outcome is not None or not row.readings:
        return {"error": (outcome.reason if outcome else None) or str(row.failure)}
    reading = row.readings[-1]
    timing = reading.timing
    return {"latency_ms": timing.summary.median, "throughput_fps": timing.throughput.images_per_s
            if timing.throughput else None, "gpu_busy_share": timing.gpu_busy_share,
            "memory_steady_mb": reading.memory.steady_mb, "memory_first_call_mb": reading.memory.first_call_peak_mb,
            "contended": (reading.contention or {}).get("contended"), "calls": timing.summary.count,
            "at": time.time()}


def loop_spec(name, precision, batch, workspace: Path, artifact=None, provider_options=None, size=None) -> dict:
    size = size or SIZE
    export = study.export_path(study.backend_of(CONFIG, name), precision, DEVICE, size)
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
            variants = ORT_VARIANTS if study.backend_of(CONFIG, name) == "onnx" else list(VARIANTS)
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


def _set_name(folder: str) -> str:
    """A result folder as the tables name it: its workspace's name for a study's `artifacts/results`."""
    path = Path(folder)
    return path.parent.parent.name if path.parts[-2:] == ("artifacts", "results") else path.name


def _median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def summarise(out: Path) -> str:
    records = [json.loads(line) for line in (out / "ablation.jsonl").read_text().splitlines()]
    lines = ["| row | variant | segments | latency ms (median, range) | harness / loop latency | throughput img/s | "
             "harness / loop throughput | GPU busy | memory MB | verdict |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for key in dict.fromkeys(r["row"] for r in records if r.get("kind") in ("loop", "harness")):
        loops = [r for r in records if r["row"] == key and r["kind"] == "loop" and "latency_ms" in r]
        if not loops:
            continue
        loop_ms = [r["latency_ms"] for r in loops]
        loop_fps = _median(r["throughput_fps"] for r in loops)
        low, high, mid = min(loop_ms), max(loop_ms), statistics.median(loop_ms)
        lines.append(f"| {key} | plain loop | {len(loops)} | {mid:.3f} ({low:.3f}–{high:.3f}) | 1 | {loop_fps:.0f} | 1 "
                     "| | | |")
        for variant in dict.fromkeys(r["variant"] for r in records if r["row"] == key and r["kind"] == "harness"):
            runs = [r for r in records if r["row"] == key and r.get("variant") == variant and "latency_ms" in r]
            errors = [r for r in records if r["row"] == key and r.get("variant") == variant and "error" in r]
            if not runs:
                lines.append(f"| {key} | {variant} | 0 | {errors[0]['error'][:120] if errors else '–'} | | | | | | |")
                continue
            ms = [r["latency_ms"] for r in runs]
            fps = _median(r["throughput_fps"] for r in runs)
            busy = _median(r["gpu_busy_share"] for r in runs)
            memory = [r["memory_steady_mb"] for r in runs if r.get("memory_steady_mb") is not None]
            host_bound = bool(stats.host_bound(busy, CONFIG["measurement"]["host_bound_share"]))
            median = statistics.median(ms)
            if host_bound:
                verdict = "host-bound: " + ("inside" if low <= median <= high else "OUTSIDE") + " the loop's range"
            else:
                within = median <= PLAIN_LOOP * mid and (fps or 0) >= loop_fps / PLAIN_LOOP
                verdict = "GPU-bound: " + ("within" if within else "NOT within") + f" {PLAIN_LOOP:g}× of the loop"
            lines.append(f"| {key} | {variant} | {len(runs)} | {median:.3f} ({min(ms):.3f}–{max(ms):.3f}) | "
                         f"{median / mid:.3f} | {fps or 0:.0f} | {(fps or 0) / loop_fps:.3f} | "
                         f"{'–' if busy is None else f'{busy:.0%}'} | "
                         f"{'–' if not memory else f'{min(memory):.0f}–{max(memory):.0f}'} | {verdict} |")
    anchor_lines = ["", "| row | loop latency ms (segments) | loop img/s | row (set): latency ms, img/s | "
                    "harness / loop latency | harness / loop throughput | verdict |", "|---|---|---|---|---|---|---|"]
    for record in records:
        if record.get("kind") != "anchor" or "loops" not in record:
            continue
        loop_ms = [r["latency_ms"] for r in record["loops"]]
        low, high, mid = min(loop_ms), max(loop_ms), statistics.median(loop_ms)
        fps = statistics.median(r["throughput_fps"] for r in record["loops"])
        for row in record["rows"]:
            if row["host_bound"]:
                verdict = "host-bound: " + ("inside" if low <= row["latency_ms"] <= high else "outside") + \
                          " the loop's range"
            else:
                within = row["latency_ms"] <= PLAIN_LOOP * mid and (row["throughput_fps"] or 0) >= fps / PLAIN_LOOP
                verdict = "GPU-bound: " + ("within" if within else "NOT within") + f" {PLAIN_LOOP:g}×"
            anchor_lines.append(
                f"| {record['row'][7:]} | {mid:.3f} ({low:.3f}–{high:.3f}) | {fps:.0f} | {_set_name(row['set'])}: "
                f"{row['latency_ms']:.3f}, {row['throughput_fps'] or 0:.0f} | {row['latency_ms'] / mid:.3f} | "
                f"{(row['throughput_fps'] or 0) / fps:.3f} | {verdict} |")
    return "\n".join(lines + (anchor_lines if len(anchor_lines) > 3 else [])) + "\n"


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
    text = summarise(out)
    (out / "ablation.md").write_text(text, encoding="utf-8")
    print(text)


if __name__ == "__main__":
    sys.exit(main())
