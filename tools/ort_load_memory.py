"""What loading an ONNX Runtime CUDA session adds to the device, process after process: a probe, not a test.

    python tools/ort_load_memory.py --model artifacts/exports/onnx/fp32-any-224.onnx [--out FILE.jsonl]

Why: the ONNX Runtime fp32 (strict) rows' load figure read 200 MB in every process of one job and 136 or 144 MB in
the other runs' jobs of the same code on the same kind of machine (issue 32; docs/results/nvidia-h100-80gb-hbm3/
replicate-2026-12-07-1455/). Each scenario here makes a fresh interpreter as a measuring process does: the CUDA
context and the library handles (measure.probe.library_handles), ORT's compute stream, then the device memory in
use (total - free) before and after the session is made with the study's own options (the onnx format's, with this
scenario's math and arena growth, through backends._ort_session), and after a first run at batch 64 bound as the
study binds it (cuDNN's exhaustive search). ORT's default logger runs at its verbose level in the
child, so the arena's own lines ("Extending BFCArena ...", "Reserving memory ...") say which allocations grew it and
by how much; they come back with the readings.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
from contextlib import nullcontext

CHILD = r"""
import json, sys
import torch
import onnxruntime as ort
from fmtbench import backends
from fmtbench.backends import _ort_session as ort_session
from fmtbench.measure import probe

path, precision, fp32_math, nhwc, strategy = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4] == "1", sys.argv[5]
probe.library_handles("cuda", precision)  # the CUDA context and the libraries' handles, as before a baseline
options = {**backends.spec("onnx").options, "fp32_math": fp32_math, "arena_extend_strategy": strategy}
stream = ort_session.compute_stream(options)
def used():
    torch.cuda.synchronize()
    free, total = torch.cuda.mem_get_info()
    return (total - free) / 2**20
base = used()
ort.set_default_logger_severity(0)
session = ort_session.create_session(path, "cuda", precision, options, nhwc, None, stream)
loaded = used() - base
ort.set_default_logger_severity(3)
wrapped = ort_session.OrtSession(session, "cuda", precision, {}, shared_stream=True)  # bound as the study binds it
x = torch.randn(64, 3, 224, 224, device="cuda", dtype=wrapped.dtype)
wrapped.run(wrapped.prepare(x))
first = used() - base
print(json.dumps({"load_mb": round(loaded, 1), "after_first_run_mb": round(first, 1),
                  "provider": session.get_provider_options()["CUDAExecutionProvider"].get("arena_extend_strategy"),
                  "onnxruntime": ort.__version__}), flush=True)
"""

SCENARIOS = {  # name: (precision, fp32 math, prefer_nhwc, arena_extend_strategy, processes)
    "fp32-strict": ("fp32", "strict", False, "kNextPowerOfTwo", 4),
    "fp32-tf32-nhwc": ("fp32", "tf32", True, "kNextPowerOfTwo", 2),
    "fp32-strict-same-as-requested": ("fp32", "strict", False, "kSameAsRequested", 2),
}
ARENA_WORDS = ("BFCArena", "Extend", "Reserving memory", "arena")


def arena_lines(stderr: str) -> list[str]:
    """ORT's verbose lines about its arena (the rest of its verbose log is the graph's optimisers)."""
    return [line.strip()[-300:] for line in stderr.splitlines() if any(word in line for word in ARENA_WORDS)]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="the study's fp32 ONNX export (exports/onnx/fp32-any-224.onnx)")
    parser.add_argument("--out", default="-")
    args = parser.parse_args(argv)
    with nullcontext(sys.stdout) if args.out == "-" else open(args.out, "w", encoding="utf-8") as out:
        for name, (precision, fp32_math, nhwc, strategy, processes) in SCENARIOS.items():
            for number in range(processes):
                child = [args.model, precision, fp32_math, "1" if nhwc else "0", strategy]
                done = subprocess.run([sys.executable, "-c", CHILD, *child], capture_output=True, text=True,
                                      timeout=300)
                record = {"scenario": name, "process": number + 1}
                lines = done.stdout.strip().splitlines()
                if done.returncode or not lines:
                    record.update(rc=done.returncode, stderr=done.stderr[-2000:])
                else:
                    record.update(json.loads(lines[-1]), arena=arena_lines(done.stderr))
                out.write(json.dumps(record) + "\n")
                out.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
