"""Does a CPU row beside a CUDA model-alone process still move its device time? (a benchmark, not a test; CUDA)

    python tools/spin_beside_load.py --out F.jsonl [--rounds 2]

The 17:39 H100 lease (docs/results/nvidia-h100-80gb-hbm3/replicate-2026-12-07-1739/process-spread.md) found CUDA
model-alone processes that ran while a CPU row ran on its own cores further from their row's device time (4 of 13
beyond 2 %, eager torch fp16 bs32 +33 %) than those with the host to themselves (1 of 62). The spin check (a sample
is taken again behind a longer spin where the host queued the call slower than the spin ran) should catch exactly
that; this measures it without a whole study. Per round and format, one measuring process of the study's harness
(fmtbench.measure.probe, as a benchmark job forks it, pinned to the CUDA jobs' cores as a job pins itself) with the
host quiet, then one with a CPU row's load beside it: a process on the CPU rows' cores (workflow.hardware.core_plan)
running ResNet-18 fp32 inference at batch 32 with one thread per core, as a CPU benchmark job does. The weights are
a seeded random init (timing does not depend on them). Writes every process's reading per configuration to F (JSON
lines) and prints, per format and batch: device time quiet and beside the load, their ratio, the spin check's
retakes and unhidden samples, the share of the CPUs other processes used. `--device cpu`: a smoke run without a GPU
(no device time, the load still runs).
"""
import argparse
import json
import multiprocessing
import os
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import pandas as pd
import yaml

from fmtbench import model
from fmtbench.measure import probe
from fmtbench.settings import Settings, for_device
from fmtbench.workflow import hardware, plan

ROOT = Path(__file__).resolve().parent.parent
CONFIG = plan.check(yaml.safe_load((ROOT / "config.yaml").read_text()), ROOT / "schemas" / "config.schema.yaml")
ROWS = [("torch", "fp16"), ("torch_tf32", "fp32")]  # the rows the 17:39 spread named
LOAD_BATCH = 32


def cpu_load(cores: list[int], size: int, ready) -> None:
    """A CPU row's load: ResNet-18 fp32 inference on the CPU rows' cores, one thread per core, until killed."""
    import torch
    import torchvision
    os.sched_setaffinity(0, cores)
    torch.set_num_threads(len(cores))
    net = torchvision.models.resnet18().eval()
    batch = torch.randn(LOAD_BATCH, 3, size, size)
    with torch.inference_mode():
        net(batch)
        ready.set()
        while True:
            net(batch)


def measuring_cores(device: str) -> list[int]:
    """The cores a benchmark job of this device runs its measuring processes on (scripts/benchmark.py pins them)."""
    return hardware.core_plan(device == "cuda", CONFIG["cpu_threads"])[device]


def request(name: str, precision: str, device: str, size: int, batches: tuple, weights: str) -> probe.Request:
    measurement = Settings.from_json(for_device(CONFIG["measurement"], device)).with_processes(1)
    measurement = replace(measurement, max_seconds=min(1.0, measurement.max_seconds))
    cores = measuring_cores(device)
    return probe.Request(format=name, backend=plan.backend_of(CONFIG, name), device=device, precision=precision,
                         image_size=size, host="spin-beside-load", batch_sizes=batches, weights=weights,
                         measurement=measurement, options=dict(plan.format_options(CONFIG, name)),
                         threads=len(cores) if device == "cpu" else None)


def measure(req: probe.Request, load: str, round_: int, cores: list[int]) -> list[dict]:
    """One measuring process, with or without the CPU row's load beside it: a record per configuration."""
    loader = None
    if load == "cpu row":
        ready = multiprocessing.get_context("spawn").Event()
        loader = multiprocessing.get_context("spawn").Process(target=cpu_load, args=(cores, req.image_size, ready),
                                                                daemon=True)
        loader.start()
        if not ready.wait(120):
            loader.kill()
            raise RuntimeError("the CPU load did not start within 120 s")
    everything = hardware.usable_cores()
    try:
        os.sched_setaffinity(0, measuring_cores(req.device))  # inherited by the measuring process, as a job's
        measured = probe.one_process(req, [("dummy", batch) for batch in req.batch_sizes], checks=False)
    finally:
        os.sched_setaffinity(0, everything)
        if loader is not None:
            loader.kill()
            loader.join()
    if measured.error:
        raise RuntimeError(f"{req.format} {req.precision}: {measured.error}")
    records = []
    for (_, batch), reading in sorted(measured.readings.items()):
        timing, watch = reading.timing, reading.contention or {}
        records.append({"format": req.format, "precision": req.precision, "batch_size": batch, "load": load,
                        "round": round_, "gpu_ms": timing.gpu_ms, "gpu_retaken": timing.gpu_retaken,
                        "gpu_unhidden": timing.gpu_unhidden, "latency_ms": timing.summary.median,
                        "others_share": watch.get("elsewhere_share"), "load_cores": cores})
    for batch in measured.failures:
        print(f"{req.format} {req.precision} bs{batch[1]} ({load}): {measured.failures[batch]}", file=sys.stderr)
    return records


def summary(records: list[dict]) -> pd.DataFrame:
    """Per format, precision and batch: device time quiet and beside the load (medians over rounds), their ratio,
    the spin check's counts and the others' share of the CPUs beside."""
    table = pd.DataFrame(records)
    lines = []
    for (name, precision, batch), rows in table.groupby(["format", "precision", "batch_size"], sort=True):
        quiet, beside = (rows[rows["load"] == load] for load in ("quiet", "cpu row"))
        quiet_ms, beside_ms = quiet["gpu_ms"].median(), beside["gpu_ms"].median()  # NaN without device times
        lines.append({"format": name, "precision": precision, "batch": batch, "device time quiet (ms)": quiet_ms,
                      "beside a CPU row (ms)": beside_ms, "beside / quiet": beside_ms / quiet_ms,
                      "retaken quiet / beside": f"{int(quiet['gpu_retaken'].fillna(0).sum())} / "
                                                f"{int(beside['gpu_retaken'].fillna(0).sum())}",
                      "unhidden": int(rows["gpu_unhidden"].fillna(0).sum()),
                      "others' share of the CPUs beside": f"{beside['others_share'].min():.0%}–"
                                                          f"{beside['others_share'].max():.0%}"})
    return pd.DataFrame(lines)


def save_weights(path: str) -> None:
    model.save(model.resolve("random", seed=0), path)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--device", choices=["cuda", "cpu"], default="cuda")
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--batches", type=int, nargs="+", default=[32, 64])
    args = parser.parse_args(argv)
    load_cores = hardware.core_plan(args.device == "cuda", CONFIG["cpu_threads"])["cpu"]
    if args.device == "cpu":  # a smoke run: the load on a core of its own where there is one
        load_cores = hardware.usable_cores()[-1:]
    records = []
    with tempfile.TemporaryDirectory() as tmp:
        weights = str(Path(tmp) / "weights.pt")
        # in an interpreter of its own: this process forks the measuring processes, which a process whose torch has
        # run its CPU thread pool must not do (a forked child can hang in its first op)
        saver = multiprocessing.get_context("spawn").Process(target=save_weights, args=(weights,))
        saver.start()
        saver.join()
        if saver.exitcode != 0:
            raise RuntimeError(f"making the weights failed (exit code {saver.exitcode})")
        args.out.parent.mkdir(parents=True, exist_ok=True)
        with args.out.open("w") as out:
            for round_ in range(args.rounds):
                for name, precision in ROWS:
                    req = request(name, precision, args.device, args.size, tuple(args.batches), weights)
                    for load in ("quiet", "cpu row") if round_ % 2 == 0 else ("cpu row", "quiet"):
                        started = time.perf_counter()
                        for record in measure(req, load, round_, load_cores):
                            out.write(json.dumps(record) + "\n")
                            records.append(record)
                        out.flush()  # a run cut short keeps what it measured
                        print(f"round {round_} {name} {precision} {load}: {time.perf_counter() - started:.1f} s",
                              flush=True)
    print(summary(records).to_markdown(index=False, floatfmt=".4g"))


if __name__ == "__main__":
    main()
