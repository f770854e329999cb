"""ONNX Runtime: a dynamo-exported ONNX file (dynamic batch), run with IO binding on device tensors.

CUDA practice: the CUDA execution provider asserted first (ORT silently falls back to the CPU),
cuDNN convolution algorithm search EXHAUSTIVE (DEFAULT leaves every Conv in cuDNN's fallback mode),
ORT's own arena growth (kNextPowerOfTwo), inputs and outputs bound to torch CUDA tensors (no numpy copies),
prefer_nhwc measured both ways unless set (interleaved runs, a margin, both timings recorded), and ORT's kernels
on the measuring process's own CUDA stream (`user_compute_stream`: a torch stream made current for the process),
so torch's writes are ordered before ORT's reads without a host synchronisation, and the harness's device-time
method (a spin kernel queued first, timing.GpuTime) applies to ORT as to torch. With ORT's CUDA graphs
(`enable_cuda_graph`) ORT keeps a stream of its own (the row says so: `compute_stream`).
"""
from __future__ import annotations

import time

from fmtbench.backends import _torchutil as tu
from fmtbench.backends.base import Artifact, ExportRequest, FormatSpec, InputFormat, LoadRequest, Unavailable, math_of

SPEC = FormatSpec(
    name="onnx",
    label="ONNX Runtime",
    libraries=("torch", "onnx", "onnxscript", "onnxruntime"),
    imports=("torch", "torchvision", "onnxruntime"),  # torch first: ORT's CUDA EP finds torch's cuDNN
    artifact=Artifact(ext="onnx", per_image_size=True),
    options={"prefer_nhwc": "auto", "enable_cuda_graph": False, "fp32_math": "strict", "opset": 20,
             "arena_extend_strategy": "kNextPowerOfTwo"},
    choices={"prefer_nhwc": ("auto", True, False), "arena_extend_strategy": ("kNextPowerOfTwo", "kSameAsRequested")},
    oom_markers=("failed to allocate memory", "bfcarena"),
    library_defaults={"fp32_math": "tf32", "enable_cuda_graph": False},
    note=("ONNX Runtime on the CPU allocates from its own arena (its default, kept: without it every run pays heap "
          "allocations). The arena grows in chunks rounded up to the next power of two (`arena_extend_strategy` "
          "kNextPowerOfTwo), so its size is a staircase over the sizes requested, not a line: a CPU row's memory "
          "figure can fall from one batch size to the next and overstates what the tensors need. On CUDA too the "
          "arena is ORT's default (kNextPowerOfTwo): growing it by what is requested instead (kSameAsRequested) "
          "costs back-to-back rate for less memory (measured on one GPU in docs/results/nvidia-h200/ablation/, not "
          "in this study); a measuring process makes the session anew for each configuration, so none inherits "
          "another's arena (its cuDNN algorithm search runs again). On CUDA a session has one intra-op thread (the "
          "graph runs on the GPU) and runs its kernels on the measuring process's torch stream, so the harness times "
          "its kernels as it times torch's (a row with ORT's own CUDA graphs keeps ORT's stream)."),
)
# prefer_nhwc "auto": NHWC is kept only when faster than NCHW by more than this share; else ORT's default.
NHWC_MARGIN = 0.03
TUNE_WARMUP, TUNE_RUNS = 5, 40
INPUT, OUTPUT = "input", "logits"
# CUDA sessions: one intra-op thread (the graph runs on the GPU; ORT's maintainers advise 1 where the CPU does no
# heavy work). ORT's default pool has a thread per physical core of the machine, each pinned by ORT to its core
# whatever the process's own affinity, spinning after each run: on the cores of the study's CPU rows too.
CUDA_INTRA_OP_THREADS = 1
ONNX_DTYPES = {"fp16": "FLOAT16", "fp32": "FLOAT"}


def input_format(request: LoadRequest) -> InputFormat:
    return InputFormat(dtype="float16" if request.precision == "fp16" else "float32", channels_last=False)


DISTRIBUTIONS = ("onnxruntime-gpu", "onnxruntime")


def distribution() -> str:
    """Which installed distribution the imported `onnxruntime` package is (both install the same package name:
    where both are installed, the one first on the path is imported), with its version and build."""
    import importlib.metadata as metadata
    from pathlib import Path

    import onnxruntime as ort
    package = Path(ort.__file__).resolve().parent
    for name in DISTRIBUTIONS:
        try:
            found = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue
        if Path(found.locate_file("onnxruntime")).resolve() == package:
            return f"{name} {found.version} ({ort.get_device()} build)"
    return f"onnxruntime {ort.__version__} ({ort.get_device()} build, distribution not found)"


def installed() -> list[str]:
    import importlib.metadata as metadata
    found = []
    for name in DISTRIBUTIONS:
        try:
            found.append(f"{name} {metadata.version(name)}")
        except metadata.PackageNotFoundError:
            continue
    return found


def probe(device: str) -> str | None:
    try:
        import onnxruntime as ort
    except ImportError as err:
        return f"onnxruntime is not installed ({err})"
    if device == "cuda" and "CUDAExecutionProvider" not in ort.get_available_providers():
        others = [item for item in installed() if item.startswith("onnxruntime-gpu")]
        if others:
            return (f"the imported onnxruntime is {distribution()}, without CUDA, although {others[0]} is installed "
                    "too: both provide the package `onnxruntime` and the CPU-only one is first on the path "
                    "(uninstall `onnxruntime`)")
        return f"onnxruntime {ort.__version__} has no CUDAExecutionProvider (install onnxruntime-gpu)"
    return None


# --- export ---------------------------------------------------------------------------------------

def float_initializer_types(onnx_model) -> set[str]:
    """Element types of the floating-point initializers (shape constants are INT64 and left out)."""
    import onnx
    floating = {onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16, onnx.TensorProto.DOUBLE, onnx.TensorProto.BFLOAT16}
    return {onnx.TensorProto.DataType.Name(init.data_type)
            for init in onnx_model.graph.initializer if init.data_type in floating}


def check_precision(onnx_model, precision: str) -> None:
    """The saved file really is in `precision`: all float weights and the input/output element types."""
    import onnx
    expected = ONNX_DTYPES[precision]
    found = float_initializer_types(onnx_model)
    if found != {expected}:
        raise ValueError(f"{precision} ONNX model has float initializers of types {sorted(found)}, expected {expected}")
    for value in [*onnx_model.graph.input, *onnx_model.graph.output]:
        element = onnx.TensorProto.DataType.Name(value.type.tensor_type.elem_type)
        if element != expected:
            raise ValueError(f"{precision} ONNX model's {value.name} is {element}, expected {expected}")


def export(model, request: ExportRequest, out) -> dict:
    import onnx
    import torch
    size = request.image_size
    half_or_float = model.to(dtype=tu.dtype(request.precision))  # fp16: a .half() model, exported as such
    example = torch.randn(min(request.batch_sizes), 3, size, size).to(tu.dtype(request.precision))
    batch = torch.export.Dim("batch", min=1, max=max(4096, max(request.batch_sizes)))
    torch.onnx.export(half_or_float, (example,), str(out), dynamo=True, external_data=False,
                      input_names=[INPUT], output_names=[OUTPUT], dynamic_shapes=({0: batch},),
                      opset_version=request.options["opset"], verbose=False)
    saved = onnx.load(str(out))  # the file on disk, not the exporter's in-memory program
    onnx.checker.check_model(saved)
    check_precision(saved, request.precision)
    batch_dim = saved.graph.input[0].type.tensor_type.shape.dim[0]
    if not batch_dim.dim_param:
        raise ValueError(f"{out}: the batch axis is not dynamic")
    return {"method": "torch.onnx.export(dynamo=True), dynamic batch axis, single file",
            "opset": max(op.version for op in saved.opset_import if op.domain in ("", "ai.onnx")),
            "float_initializer_types": sorted(float_initializer_types(saved)),
            "input_shape": [d.dim_param or d.dim_value for d in saved.graph.input[0].type.tensor_type.shape.dim]}


# --- runtime ----------------------------------------------------------------------------------------

def cuda_provider_options(prefer_nhwc: bool, options: dict, precision: str, stream: int | None = None) -> dict:
    """Device 0: each job sees only its own GPU (CUDA_VISIBLE_DEVICES). `stream`: the CUDA stream (its handle)
    ORT's kernels run on (`user_compute_stream`); None: a stream of ORT's own, which `prepare` then synchronises
    with torch's before each run. ORT treats handle 0 (torch's default stream) as "none": `compute_stream` makes a
    stream of its own for that reason.

    `use_tf32` is set for fp32 only: "0" there means strict fp32, but on fp16 models it also kept the
    convolutions off the tensor cores (3.3 ms instead of 1.4 ms at 224², batch 64 on the H100)."""
    provider = {
        "cudnn_conv_algo_search": "EXHAUSTIVE",
        "arena_extend_strategy": options["arena_extend_strategy"],
        "do_copy_in_default_stream": "1",
        "prefer_nhwc": "1" if prefer_nhwc else "0",
        "enable_cuda_graph": "1" if options["enable_cuda_graph"] else "0",
    }
    if precision == "fp32":
        provider["use_tf32"] = "1" if options["fp32_math"] == "tf32" else "0"
    if stream:
        provider["user_compute_stream"] = str(stream)
    return provider


def compute_stream(options: dict):
    """The torch stream ORT's kernels run on, made current for the process (every torch op of the measuring
    process — inputs, the harness's spin kernel and events — then shares it); None with ORT's CUDA graphs, which
    keep a stream of ORT's own."""
    if options["enable_cuda_graph"]:
        return None
    import torch
    stream = torch.cuda.Stream()
    torch.cuda.set_stream(stream)
    return stream


def session_options(threads: int | None):
    import onnxruntime as ort
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.log_severity_level = 2  # warnings reach the job log (cuDNN "Fallback mode" among them)
    if threads:
        so.intra_op_num_threads = threads
        so.inter_op_num_threads = 1
    return so


def output_classes(session) -> int:
    """The class count of the exported model's logits (the head of the checkpoint it was exported from)."""
    shape = next(output.shape for output in session.get_outputs() if output.name == OUTPUT)
    if len(shape) != 2 or not isinstance(shape[1], int):
        raise ValueError(f"ONNX output {OUTPUT!r} has shape {shape}, expected (batch, classes)")
    return shape[1]


class OrtSession:
    """IO binding by pointer on torch tensors. With CUDA graphs ORT replays the graph captured on the
    first run of each shape, so every shape keeps fixed buffers (and its own graph id) and new inputs are
    copied into them in `prepare`."""

    def __init__(self, session, device: str, precision: str, info: dict, cuda_graph: bool = False, remake=None,
                 shared_stream: bool = False):
        import torch
        self.session, self.device, self._remake = session, device, remake
        self.dtype = tu.dtype(precision)
        self.numpy_dtype = {torch.float16: "float16", torch.float32: "float32"}[self.dtype]
        self.info = info
        self.cuda_graph = cuda_graph
        # Without a shared stream ORT runs on a CUDA stream of its own (synchronised at the end of each run): work
        # queued on torch's stream is not in front of it (timing.GpuTime cannot hide its launches)
        self.own_stream = device == "cuda" and not shared_stream
        self._static: dict = {}
        self.classes = output_classes(session)

    def _bind(self, inputs):
        import numpy as np
        import torch
        output = torch.empty((inputs.shape[0], self.classes), dtype=self.dtype, device=self.device)
        binding = self.session.io_binding()
        device_type, device_id = ("cuda", inputs.device.index or 0) if self.device == "cuda" else ("cpu", 0)
        binding.bind_input(INPUT, device_type, device_id, np.dtype(self.numpy_dtype), list(inputs.shape),
                           inputs.data_ptr())
        binding.bind_output(OUTPUT, device_type, device_id, np.dtype(self.numpy_dtype), list(output.shape),
                            output.data_ptr())
        return binding, output

    def _run_options(self, graph_id: int | None):
        """None (ORT's defaults, as a plain loop runs) unless a CUDA graph is named."""
        if graph_id is None:
            return None
        import onnxruntime as ort
        options = ort.RunOptions()
        if graph_id is not None:
            options.add_run_config_entry("gpu_graph_id", str(graph_id))
        return options

    def prepare(self, batch):
        """Binds the (cast, contiguous) input tensor and a preallocated output tensor by pointer."""
        import torch
        inputs = batch.to(self.dtype).contiguous()
        if self.cuda_graph:
            key = tuple(inputs.shape)
            if key not in self._static:
                static_input = inputs.clone()
                binding, output = self._bind(static_input)
                self._static[key] = (binding, static_input, output, self._run_options(len(self._static) + 1))
            else:
                self._static[key][1].copy_(inputs)
            prepared = self._static[key]
        else:
            binding, output = self._bind(inputs)
            prepared = (binding, inputs, output, self._run_options(None))
        if self.own_stream:
            # ORT runs on a stream of its own: the input, written on torch's stream, is complete before it reads
            # it (this stream only: a loader's side stream is not waited for)
            torch.cuda.current_stream().synchronize()
        self._last = prepared
        return prepared  # the tensors stay alive as long as the binding

    def run(self, prepared):
        binding, _, output, run_options = prepared
        self.session.run_with_iobinding(binding, run_options)
        return output

    def run_queued(self, prepared):
        """The call queued on the shared stream without ORT's wait for that stream at the end of the run (run
        option `disable_synchronize_execution_providers`): for the device time of a call (timing.GpuTime), whose
        end event must be queued behind the call's kernels, not recorded after the host waited for them. The
        kernels are the same as `run`'s."""
        if self.own_stream:
            return self.run(prepared)
        import onnxruntime as ort
        binding, _, output, _ = prepared
        options = ort.RunOptions()
        options.add_run_config_entry("disable_synchronize_execution_providers", "1")
        self.session.run_with_iobinding(binding, options)
        return output

    def release(self, next_batch_size: int | None = None) -> None:
        """What the last configuration left in ORT's arena goes back: on CUDA the session is made anew (its arena
        keeps regions a shrink does not return — grouped rows read 84 MB less than fresh processes on the H100 —
        and captured CUDA graphs keep their buffers for good); on the CPU one more run whose options shrink the
        arena at its end (memory.enable_memory_arena_shrinkage)."""
        import onnxruntime as ort
        self._static.clear()
        last, self._last = getattr(self, "_last", None), None
        if self.device == "cuda" and self._remake is not None:
            self.session = None
            self.session = self._remake()
            return
        if last is None:
            return
        options = ort.RunOptions()
        options.add_run_config_entry("memory.enable_memory_arena_shrinkage", "cpu:0")
        self.session.run_with_iobinding(last[0], options)

    def logits(self, output):
        return output.float().cpu()


def _create(path: str, device: str, precision: str, options: dict, prefer_nhwc: bool, threads: int | None,
            stream=None):
    import onnxruntime as ort
    if device == "cuda":
        threads = CUDA_INTRA_OP_THREADS
        handle = stream.cuda_stream if stream is not None else None
        providers = [("CUDAExecutionProvider", cuda_provider_options(prefer_nhwc, options, precision, handle)),
                     "CPUExecutionProvider"]
    else:
        providers = ["CPUExecutionProvider"]
    session = ort.InferenceSession(path, sess_options=session_options(threads), providers=providers)
    first = session.get_providers()[0]
    expected = "CUDAExecutionProvider" if device == "cuda" else "CPUExecutionProvider"
    if first != expected:
        raise RuntimeError(f"ONNX Runtime put {first} first, not {expected}: it fell back")
    return session


def prefer_nhwc_decision(nchw_ms: float, nhwc_ms: float, margin: float = NHWC_MARGIN) -> bool:
    """NHWC only when clearly faster: within the margin the two are a tie and ORT's default (NCHW) stays."""
    return nhwc_ms < nchw_ms * (1 - margin)


def tune(request: LoadRequest) -> dict:
    """Settings measured once per job, in a process of its own (so its memory is nobody's figure).

    prefer_nhwc "auto": a session each way on the largest configured batch, warmed up, then timed
    alternately (NCHW, NHWC, NCHW, ...) so a drift of the machine hits both alike; NHWC is kept only when
    its median is lower than NCHW's by more than NHWC_MARGIN, else ORT's default (NCHW) stays."""
    if request.device != "cuda" or request.options["prefer_nhwc"] != "auto":
        return {}
    import statistics

    import torch

    from fmtbench import data
    tu.require_device("cuda")
    batch = data.dummy_batch(max(request.batch_sizes), request.image_size, "cuda")
    sessions = {}
    for layout, nhwc in (("nchw", False), ("nhwc", True)):
        wrapper = OrtSession(_create(str(request.artifact), "cuda", request.precision, request.options, nhwc, None),
                             "cuda", request.precision, {})
        prepared = wrapper.prepare(batch)
        for _ in range(TUNE_WARMUP):
            wrapper.run(prepared)
        sessions[layout] = (wrapper, prepared)
    times: dict[str, list[float]] = {"nchw": [], "nhwc": []}
    for _ in range(TUNE_RUNS):
        for layout, (wrapper, prepared) in sessions.items():
            torch.cuda.synchronize()
            start = time.perf_counter()
            wrapper.run(prepared)
            torch.cuda.synchronize()
            times[layout].append((time.perf_counter() - start) * 1e3)
    medians = {layout: statistics.median(values) for layout, values in times.items()}
    prefer = prefer_nhwc_decision(medians["nchw"], medians["nhwc"])
    return {"prefer_nhwc": prefer,
            "prefer_nhwc_trial": {"median_ms": medians, "runs_each": TUNE_RUNS, "interleaved": True,
                                  "margin": NHWC_MARGIN, "batch_size": max(request.batch_sizes),
                                  "chosen": "nhwc" if prefer else "nchw"}}


def load(request: LoadRequest):
    import onnxruntime  # noqa: F401  (import after torch: it finds torch's CUDA and cuDNN libraries)
    tu.require_device(request.device)
    reason = probe(request.device)
    if reason:
        raise Unavailable(reason)
    path = str(request.artifact)
    info = {"onnxruntime": onnxruntime.__version__, "distribution": distribution(), "io_binding": True,
            "math": math_of(request.precision, request.options["fp32_math"])}
    if request.device == "cpu":
        session = _create(path, "cpu", request.precision, request.options, False, request.threads)
        return OrtSession(session, "cpu", request.precision,
                          {**info, "providers": session.get_providers(), "threads": request.threads})
    prefer_nhwc = request.options["prefer_nhwc"]
    if prefer_nhwc == "auto":
        raise ValueError("prefer_nhwc 'auto' must be resolved by tune() before load()")
    stream = compute_stream(request.options)

    def create():
        return _create(path, "cuda", request.precision, request.options, bool(prefer_nhwc), None, stream)

    session = create()
    provider_options = session.get_provider_options()["CUDAExecutionProvider"]
    info.update({key: provider_options.get(key) for key in
                 ("cudnn_conv_algo_search", "arena_extend_strategy", "prefer_nhwc", "enable_cuda_graph", "use_tf32")})
    shared = stream is not None
    if shared and provider_options.get("has_user_compute_stream") not in (None, "1"):
        raise RuntimeError(f"ONNX Runtime did not take the compute stream it was given: {provider_options}")
    info["compute_stream"] = ("the measuring process's torch stream (user_compute_stream)" if shared else
                              "ONNX Runtime's own (CUDA graphs): its device time is not measured")
    info["providers"] = session.get_providers()
    info["intra_op_threads"] = CUDA_INTRA_OP_THREADS
    if "prefer_nhwc_trial" in request.options:
        info["prefer_nhwc_trial"] = request.options["prefer_nhwc_trial"]
    return OrtSession(session, "cuda", request.precision, info, cuda_graph=bool(request.options["enable_cuda_graph"]),
                      remake=create, shared_stream=shared)
