"""Does a CPU row's speed move with what runs beside it, or with the host alone? (a developer's probe, lent GPU)

Times ResNet-18 fp32 batch 32 at 224² on the CPU rows' cores (`--cores`, e.g. 7-13, their thread count) call by
call, in phases of `--seconds`: alone; beside a CUDA process running a host-bound fp16 loop on `--beside` cores
(what a CUDA job's model-alone processes do while a CPU row runs, with the host in turns); alone; beside a CPU load
of as many busy threads as `--beside` has cores (does the guest's vCPU pair share physical cores?); alone; beside as
many processes streaming memory on those cores (do the memory bus and the shared cache move it?); alone. With
`--harness`, every phase alone is followed by the plain loop in a fresh process whose C heap keeps what a call frees
(as the harness's does), then by the same configuration in one measuring process of the study's harness
(`fmtbench.measure.probe`, config.yaml's CPU settings with `--seconds` as its time cap and no target interval), on
the same cores: does the harness read what the plain loop reads, as steadily, and is the heap the difference?
`--alone-only` leaves out the phases beside loads. Writes one JSON line per phase (median, quartiles, min, max,
calls, the samples) and prints a table.

    python3 tools/host_probe.py --cores 7-13 --beside 0-6 --seconds 40 [--harness] --out host_probe.jsonl
"""
from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import statistics
import tempfile
import time
from dataclasses import replace
from pathlib import Path


def _cores(text: str) -> list[int]:
    first, _, last = text.partition("-")
    return list(range(int(first), int(last or first) + 1))


def _cuda_loop(cores: list[int], stop) -> None:
    os.sched_setaffinity(0, cores[:1])
    import torch
    import torchvision
    model = torchvision.models.resnet18().cuda().half().eval()
    x = torch.randn(32, 3, 224, 224, device="cuda", dtype=torch.half)
    with torch.inference_mode():
        while not stop.is_set():
            model(x)
            torch.cuda.synchronize()


def _cpu_load(core: int, stop) -> None:
    os.sched_setaffinity(0, [core])
    value = 0
    while not stop.is_set():
        for i in range(100_000):
            value ^= i * i


def _memory_load(core: int, stop) -> None:
    """Streams 256 MB arrays through memory on one core: the memory bandwidth and last-level cache a decoder's or a
    copy's work takes, which a busy integer loop does not."""
    os.sched_setaffinity(0, [core])
    import numpy as np
    source = np.ones(32 * 2**20)
    target = np.empty_like(source)
    while not stop.is_set():
        np.copyto(target, source)


def _phase(model, x, seconds: float) -> list[float]:
    import torch
    samples, end = [], time.perf_counter() + seconds
    with torch.inference_mode():
        while time.perf_counter() < end:
            start = time.perf_counter()
            model(x)
            samples.append((time.perf_counter() - start) * 1e3)
    return samples


def _harness(cores: list[int], seconds: float, scratch: Path) -> list[float]:
    """One measuring process of the study's harness on `cores`: torch fp32 batch 32 at 224², the model alone."""
    import torch
    import torchvision
    import yaml

    from fmtbench.measure import probe
    from fmtbench.settings import Settings, for_device
    from fmtbench.workflow import plan

    root = Path(__file__).resolve().parent.parent
    config = plan.check(yaml.safe_load((root / "config.yaml").read_text()), root / "schemas" / "config.schema.yaml")
    weights = scratch / "resnet18-seed0.pt"
    if not weights.exists():
        torch.manual_seed(0)
        torch.save(torchvision.models.resnet18().state_dict(), weights)
    measurement = Settings.from_json(for_device(config["measurement"], "cpu")).with_processes(1)
    measurement = replace(measurement, max_seconds=seconds, min_seconds=seconds, target_ci=0.0)
    request = probe.Request(format="torch", device="cpu", precision="fp32", image_size=224, weights=str(weights),
                            host="host-probe", batch_sizes=(32,), measurement=measurement, threads=len(cores),
                            options=dict(plan.format_options(config, "torch")))
    measured = probe.one_process(request, [("dummy", 32)], checks=False)
    reading = measured.readings.get(("dummy", 32))
    if reading is None:
        raise SystemExit(f"the harness measured nothing: {measured.error or measured.failures}")
    return list(reading.timing.samples_ms)


def _kept_heap_child(cores, seconds, conn) -> None:
    """The plain loop in a fresh process whose C heap keeps what a call frees (glibc mallopt: M_MMAP_THRESHOLD and
    M_TRIM_THRESHOLD at their largest), as the harness's measuring process does: the heap apart from the rest of
    the harness."""
    import ctypes
    libc = ctypes.CDLL("libc.so.6")
    kept = bool(libc.mallopt(-3, 2**31 - 1)) and bool(libc.mallopt(-1, 2**31 - 1))
    os.sched_setaffinity(0, cores)
    import torch
    import torchvision
    torch.set_num_threads(len(cores))
    model = torchvision.models.resnet18().eval()
    x = torch.randn(32, 3, 224, 224)
    _phase(model, x, 3)
    conn.send(_phase(model, x, seconds) if kept else [])


def _apart(ctx, target, *args) -> list[float]:
    receive, send = ctx.Pipe(duplex=False)
    child = ctx.Process(target=target, args=(*args, send))
    child.start()
    samples = receive.recv()
    child.join(60)
    return samples


def _harness_child(cores, seconds, scratch, conn) -> None:
    os.sched_setaffinity(0, cores)
    conn.send(_harness(cores, seconds, scratch))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cores", default="7-13")
    parser.add_argument("--beside", default="0-6")
    parser.add_argument("--seconds", type=float, default=40)
    parser.add_argument("--harness", action="store_true", help="a harness phase after every phase alone")
    parser.add_argument("--alone-only", action="store_true", help="no phases beside loads (a machine without a GPU)")
    parser.add_argument("--out", default="host_probe.jsonl")
    args = parser.parse_args()
    cores, beside = _cores(args.cores), _cores(args.beside)
    ctx = mp.get_context("spawn")
    os.sched_setaffinity(0, cores)
    import torch
    import torchvision
    torch.set_num_threads(len(cores))
    model = torchvision.models.resnet18().eval()
    x = torch.randn(32, 3, 224, 224)
    _phase(model, x, 3)  # warm-up
    plan = [("alone", None), ("beside a CUDA host-bound loop", "cuda"), ("alone", None),
            ("beside a CPU load on the other cores", "cpu"), ("alone", None),
            ("beside memory streaming on the other cores", "memory"), ("alone", None)]
    if args.alone_only:
        plan = [entry for entry in plan if entry[1] is None]
    if args.harness:
        plan = [step for entry in plan for step in ([entry, ("the plain loop, heap kept, alone", "kept"),
                                                     ("the harness, alone", "harness")]
                                                    if entry[1] is None else [entry])]
    scratch = Path(tempfile.mkdtemp(prefix="host-probe-"))
    with open(args.out, "w", encoding="utf-8") as out:
        for name, kind in plan:
            stop, helpers = ctx.Event(), []
            if kind == "cuda":
                helpers = [ctx.Process(target=_cuda_loop, args=(beside, stop))]
            elif kind == "cpu":
                helpers = [ctx.Process(target=_cpu_load, args=(core, stop)) for core in beside]
            elif kind == "memory":
                helpers = [ctx.Process(target=_memory_load, args=(core, stop)) for core in beside]
            for helper in helpers:
                helper.start()
            if helpers:
                time.sleep(8 if kind == "cuda" else 2)
            began = time.time()
            # the harness and the kept heap from fresh (spawned) processes: the harness forks its measuring process,
            # and a fork of this process, whose OpenMP threads have run, would hang in its first parallel region
            samples = (_apart(ctx, _harness_child, cores, args.seconds, scratch) if kind == "harness" else
                       _apart(ctx, _kept_heap_child, cores, args.seconds) if kind == "kept" else
                       _phase(model, x, args.seconds))
            stop.set()
            for helper in helpers:
                helper.join(30)
            q = statistics.quantiles(samples, n=4)
            line = {"phase": name, "began": began, "calls": len(samples), "median_ms": statistics.median(samples),
                    "q1_ms": q[0], "q3_ms": q[2], "min_ms": min(samples), "max_ms": max(samples),
                    "cores": args.cores, "beside": args.beside, "samples_ms": [round(s, 2) for s in samples]}
            out.write(json.dumps(line) + "\n")
            out.flush()
            print(f"{name:40s} calls {len(samples):4d}  median {line['median_ms']:7.1f} ms  "
                  f"q1-q3 {q[0]:6.1f}-{q[2]:6.1f}  min-max {line['min_ms']:6.1f}-{line['max_ms']:6.1f}", flush=True)


if __name__ == "__main__":
    main()
