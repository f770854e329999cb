"""What nvJPEG keeps on the device between calls, by batch size and order: a probe, not a test.

    python tools/nvjpeg_memory.py [--images DIR] [--out FILE.jsonl]

Why: the GPU-decode rows' memory moves between runs and with what ran before them in their process (issue 32).
torchvision's batched GPU decode keeps one nvJPEG decoder per process (made on first use, never freed), its device
buffers outside torch's allocator; if they grew with the batch and stayed, a configuration measured after a larger
one would see none of that growth. On an H100 they did not (2026-12-07,
docs/results/nvidia-h100-80gb-hbm3/replicate-2026-12-07-1455/): 97-101 MB stayed whatever the batch size or order,
while a batch's peak followed which images it held.

Each scenario runs in a fresh interpreter: the CUDA context made, then for each batch size in the scenario's order,
`passes` passes over the images (cycling in order, as the loaders do: batches after the first pass shift where the
batch size does not divide the set) decoded, resized and cropped as the study does (data.sources.decode_on_gpu on a
side stream). After each pass its outputs are dropped, torch's cache emptied and the device memory in use read
(total - free, cudaMemGetInfo): what stays is nvJPEG's (and the context's). The largest reading after a batch of the
pass is read too (after each synchronised batch, torch's cache included). Growth is over the reading after the context
was made. Without --images, the study's generated set (256 JPEGs, seed 0) is made in a temporary folder.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from contextlib import nullcontext

CHILD = r"""
import json, sys, time
import torch
from fmtbench.data.sources import decode_on_gpu

folder, order, passes, size = sys.argv[1], [int(b) for b in sys.argv[2].split(",")], int(sys.argv[3]), int(sys.argv[4])
paths = sorted(str(p) for p in __import__("pathlib").Path(folder).rglob("*.jpg"))
items = [(p, open(p, "rb").read()) for p in paths]
torch.zeros(1, device="cuda"); torch.cuda.synchronize()
def used():
    free, total = torch.cuda.mem_get_info()
    return (total - free) / 2**20
base = used()
side = torch.cuda.Stream()
cursor = 0
for batch in order:
    for number in range(passes):
        peak, start = 0.0, time.perf_counter()
        for _ in range(-(-len(items) // batch)):
            chunk = [items[(cursor + i) % len(items)] for i in range(batch)]
            cursor = (cursor + batch) % len(items)
            with torch.cuda.stream(side):
                out = decode_on_gpu(chunk, size, "cuda", None)
            side.synchronize()
            peak = max(peak, used() - base)
            del out
        torch.cuda.synchronize(); torch.cuda.empty_cache()
        print(json.dumps({"batch": batch, "pass": number + 1, "kept_mb": round(used() - base, 1),
                          "peak_mb": round(peak, 1), "seconds": round(time.perf_counter() - start, 3)}), flush=True)
"""

SCENARIOS = {  # name: (batch sizes in order, passes per batch size)
    **{f"fresh-{b}": ([b], 3) for b in (32, 40, 48, 56, 64)},
    "ascending": ([32, 40, 48, 56, 64], 2),
    "descending": ([64, 56, 48, 40, 32], 2),
    "64-then-32": ([64, 32, 64], 2),
}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", help="folder of JPEGs (default: the study's generated set, made here)")
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--out", default="-")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        folder = args.images
        if folder is None:
            from fmtbench.images import generate
            folder = tmp
            generate(folder, 256, 0)
        with nullcontext(sys.stdout) if args.out == "-" else open(args.out, "w", encoding="utf-8") as out:
            _run_scenarios(folder, args.size, out)
    return 0


def _run_scenarios(folder: str, size: int, out) -> None:
    """Each scenario in a fresh interpreter; its lines (or its failure) to `out` as they come."""
    for name, (order, passes) in SCENARIOS.items():
        done = subprocess.run([sys.executable, "-c", CHILD, folder, ",".join(map(str, order)), str(passes),
                               str(size)], capture_output=True, text=True, timeout=300)
        for line in done.stdout.splitlines():
            out.write(json.dumps({"scenario": name, **json.loads(line)}) + "\n")
        if done.returncode:
            out.write(json.dumps({"scenario": name, "rc": done.returncode, "stderr": done.stderr[-2000:]}) + "\n")
        out.flush()


if __name__ == "__main__":
    sys.exit(main())
