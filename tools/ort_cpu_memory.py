"""ONNX Runtime CPU memory vs batch size, with its arena (ORT's default) and without: a benchmark, not a test.

    python tools/ort_cpu_memory.py artifacts/exports/onnx/fp32-any-224.onnx 224

Each (arena, batch) runs in a fresh interpreter: the input is made, the C heap trimmed and the kernel's
high-water mark reset, then the session is created and run 4 times; growth = VmHWM - RSS at the baseline
(the pipeline's CPU memory method), time = median of the last 3 runs. Backs the report's note on why ORT's CPU
memory is not monotone in the batch size.
"""
import subprocess
import sys

CHILD = r"""
import ctypes, json, sys, time
import numpy as np
import onnxruntime as ort

path, batch, arena = sys.argv[1], int(sys.argv[2]), sys.argv[3] == "on"
size, threads = int(sys.argv[4]), int(sys.argv[5])

def status(field):
    for line in open("/proc/self/status"):
        if line.startswith(field):
            return int(line.split()[1]) / 1024

x = np.random.default_rng(0).standard_normal((batch, 3, size, size), dtype=np.float32)
ctypes.CDLL("libc.so.6").malloc_trim(0)
open("/proc/self/clear_refs", "w").write("5")
base = status("VmRSS")
options = ort.SessionOptions()
options.intra_op_num_threads = threads
options.enable_cpu_mem_arena = arena
session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
name = session.get_inputs()[0].name
times = []
for _ in range(4):
    start = time.perf_counter()
    session.run(None, {name: x})
    times.append(time.perf_counter() - start)
print(json.dumps({"arena": arena, "batch": batch, "growth_mb": round(status("VmHWM") - base, 1),
                  "median_ms": round(sorted(times[1:])[1] * 1000, 1)}))
"""


def main():
    path, size = sys.argv[1], int(sys.argv[2])
    threads = int(sys.argv[3]) if len(sys.argv) > 3 else 2
    for arena in ("on", "off"):
        for batch in (32, 40, 48, 56, 64):
            out = subprocess.run([sys.executable, "-c", CHILD, path, str(batch), arena, str(size), str(threads)],
                                 capture_output=True, text=True)
            print(out.stdout.strip() or out.stderr[-500:], flush=True)


if __name__ == "__main__":
    main()
