"""torch.compile (inductor) in the measuring process, from compiler caches the export stage warmed.

The model's batch norms are folded into its convolutions (torch.fx, in fp32, before the cast), then it is
.half() in channels_last for fp16 and given to `torch.compile` with mode "reduce-overhead" (CUDA graphs:
no per-kernel launch cost). Inductor's own freezing (weights as constants) would fold the batch norms too,
but a frozen graph bypasses AOTAutograd's cache, so every measuring process would trace and partition the
model again; `freezing: true` is there to compare. The batch dimension is marked dynamic over the
configured range, so one compile serves every batch size (CUDA graphs still record one graph per size, at
its first call).

The export stage compiles once into a directory — the artifact: inductor's FX-graph, AOTAutograd and
autotuning caches and Triton's kernels — and records the cold compile time and the time a fresh process
then needs to get the compiled model from that cache. The benchmark points inductor at the same directory
and marks its inputs the same way, so its first call pays a cache load, not a compile; that first call is
the `first_run` stage of each process in the per-stage breakdown, and the cache hits and misses inductor
counted are in every row's backend info. (Loading writes inductor's own files into the directory.)
"""
from __future__ import annotations

import os
import time
from pathlib import Path

from fmtbench.backends import _torchutil as tu
from fmtbench.backends.base import ExportLayout, ExportRequest, FormatSpec, LoadRequest

SPEC = FormatSpec(
    name="inductor",
    label="torch.compile (inductor)",
    libraries=("torch", "torchvision", "triton"),
    imports=("torch", "torchvision", "torch._dynamo", "torch._inductor.config"),
    artifact=ExportLayout(ext="inductor", kind="directory", per_image_size=True, per_device=True),
    devices=("cpu", "cuda"),
    options={"mode": "reduce-overhead", "fold_batchnorm": True, "freezing": False, "dynamic_batch": True,
             "fp32_math": "strict"},
    choices={"mode": ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")},
    note=("Compiled in the export stage; each measuring process loads it from the compiler caches (its first "
          "call). With CUDA graphs (reduce-overhead) a process records one graph per batch size; the loaders of a "
          "batch size after the first reuse it (inductor cannot record a shape again once its graphs were "
          "released), so their memory figure leaves out that graph's pool (`memory.shared` in their rows)."),
)
input_format = tu.input_format


def probe(device: str) -> str | None:
    import importlib.util
    if device == "cuda" and importlib.util.find_spec("triton") is None:
        return "triton is not installed (torch.compile needs it for CUDA)"
    return None


def use_cache(directory, compile_threads: int | None = None) -> None:
    """Points inductor and Triton at `directory` (read at each compile or load, not at import)."""
    import torch._inductor.config as inductor_config
    directory = Path(directory).resolve()
    os.environ["TORCHINDUCTOR_CACHE_DIR"] = str(directory / "inductor")
    os.environ["TRITON_CACHE_DIR"] = str(directory / "triton")
    inductor_config.fx_graph_cache = True
    inductor_config.autotune_local_cache = True
    if compile_threads:
        inductor_config.compile_threads = compile_threads


def compiled_model(module, options: dict):
    import torch
    import torch._inductor.config as inductor_config
    inductor_config.freezing = bool(options["freezing"])
    return torch.compile(module, mode=options["mode"], dynamic=False)


def mark_batch(tensor, batch_sizes, options: dict):
    """The same dynamic-batch marking in the export and in every measuring process: the cache key
    depends on it."""
    if options["dynamic_batch"] and len(set(batch_sizes)) > 1:
        import torch
        torch._dynamo.mark_dynamic(tensor, 0, min=min(batch_sizes), max=max(batch_sizes))
    return tensor


def cache_counters() -> dict:
    from torch._dynamo.utils import counters
    return {key: int(value) for key, value in counters["inductor"].items()
            if key.startswith(("fxgraph_cache", "autotune_local_cache")) or key == "async_compile_cache_miss"}


class InductorSession(tu.TorchModuleSession):
    def __init__(self, module, request, info: dict):
        super().__init__(module, request.precision, request.device, info)
        self.batch_sizes, self.options = request.batch_sizes, request.options

    def prepare(self, batch):
        self.last_batch_size = int(batch.shape[0])
        return mark_batch(super().prepare(batch), self.batch_sizes, self.options)

    def run(self, inputs):
        import torch
        with torch.no_grad():  # the grad mode the export compiled under: part of the cache key
            return self.module(inputs)

    def release(self, next_batch_size: int | None = None) -> None:
        """The CUDA graphs recorded per batch size (mode reduce-overhead) and their memory pool go, so the next
        configuration records its own and its memory figure holds them as a fresh process's would — unless it
        runs the same batch size: inductor cannot record a shape again once its graph tree was reset ("Running
        CUDAGraph after shutdown", seen on the H100), so the graph is kept and that configuration's baseline
        includes its pool (`memory_shared`, recorded in its row)."""
        graphs = self.options["mode"] in ("reduce-overhead", "max-autotune")
        self.keeps_graph = graphs and next_batch_size == getattr(self, "last_batch_size", None)
        if graphs and not self.keeps_graph:
            from torch._inductor import cudagraph_trees
            cudagraph_trees.reset_cudagraph_trees()

    @property
    def memory_shared(self) -> str | None:
        if getattr(self, "keeps_graph", False):
            return ("the CUDA graph torch.compile recorded for the previous configuration at this batch size is kept "
                    "(inductor cannot record a shape again after a reset): its memory pool is in this "
                    "configuration's baseline, not in its figure")
        return None

    @property
    def info(self):
        return {**self._info, "inductor_cache": cache_counters()}

    @info.setter
    def info(self, value):
        self._info = value


def prepared_model(module, request):
    """Batch norms folded into the convolutions (in fp32, exact up to rounding), then precision, layout and
    device as eager torch uses them."""
    if request.options["fold_batchnorm"]:
        from torch.fx.experimental.optimization import fuse
        module = fuse(module.float().cpu().eval())
    return module.to(device=request.device, dtype=tu.dtype(request.precision),
                     memory_format=tu.memory_format(request.device, request.precision))


def _model(state_dict, request) -> object:
    from fmtbench import model
    return prepared_model(model.build(state_dict), request)


def export(model, request: ExportRequest, out) -> dict:
    """Compiles into the directory `out` and checks the result at every batch size; then loads it in a fresh
    interpreter to measure what a benchmark process pays."""
    import torch

    from fmtbench import isolation
    tu.require_device(request.device)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    use_cache(out)
    if request.device == "cuda":
        tu.configure_cuda_math(request.precision, request.options["fp32_math"])
    module = prepared_model(model, request)  # folding works on a copy (torch.fx), `model` stays eager
    reference = model.to(device=request.device, dtype=tu.dtype(request.precision),
                         memory_format=tu.memory_format(request.device, request.precision))
    session = InductorSession(compiled_model(module, request.options), request, {})
    sizes = sorted(request.batch_sizes)
    start = time.perf_counter()
    first = session.prepare(torch.randn(sizes[-1], 3, request.image_size, request.image_size,
                                        device=request.device))
    session.run(first)
    if request.device == "cuda":
        torch.cuda.synchronize()
    compile_seconds = time.perf_counter() - start
    differences = {}
    for size in sizes:
        example = torch.randn(size, 3, request.image_size, request.image_size, device=request.device)
        with torch.no_grad():
            expected = reference(session.prepare(example).clone())
        differences[size] = float((session.run(session.prepare(example)).float() - expected.float()).abs().max())
    from torch._dynamo.utils import counters
    compiles = int(counters["stats"]["unique_graphs"])
    warm = isolation.run_interpreter("fmtbench.backends.inductor:time_warm_load", str(out),
                                     request, timeout=1800)
    return {"method": f"torch.compile(mode={request.options['mode']!r}), batch norms folded "
                      f"{request.options['fold_batchnorm']}, freezing {request.options['freezing']}, dynamic batch "
                      f"{request.options['dynamic_batch']}; caches in the artifact directory",
            "compile_seconds": round(compile_seconds, 3), "graphs_compiled": compiles,
            "max_abs_diff_vs_eager": differences, "cold_cache": cache_counters(),
            "warm_load": warm.value if warm.status == "ok" else {"status": warm.status, "reason": warm.reason}}


def time_warm_load(directory: str, request: ExportRequest) -> dict:
    """In a fresh interpreter: seconds from torch.compile to the first result, from the warm cache."""
    import torch
    use_cache(directory, compile_threads=1)
    if request.device == "cuda":
        tu.configure_cuda_math(request.precision, request.options["fp32_math"])
    module = _model(request.weights, request)
    session = InductorSession(compiled_model(module, request.options), request, {})
    example = torch.randn(min(request.batch_sizes), 3, request.image_size, request.image_size,
                          device=request.device)
    start = time.perf_counter()
    session.run(session.prepare(example))
    if request.device == "cuda":
        torch.cuda.synchronize()
    return {"seconds": round(time.perf_counter() - start, 3), "cache": cache_counters()}


def load(request: LoadRequest):
    tu.require_device(request.device)
    use_cache(request.artifact, compile_threads=1)  # a cache hit compiles nothing: no worker pool
    math = tu.configure_cuda_math(request.precision, request.options["fp32_math"]) \
        if request.device == "cuda" else request.precision
    module = compiled_model(_model(request.state_dict, request), request.options)
    return InductorSession(module, request, {"math": math, "mode": request.options["mode"],
                                             "fold_batchnorm": request.options["fold_batchnorm"],
                                             "freezing": request.options["freezing"]})
