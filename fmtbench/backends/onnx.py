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

from fmtbench.backends import _ort_session as ort_session
from fmtbench.backends import _torchutil as tu
from fmtbench.backends.base import (
    ExportLayout,
    ExportRequest,
    FormatSpec,
    InputFormat,
    LoadRequest,
    Unavailable,
    math_of,
)

SPEC = FormatSpec(
    name="onnx",
    label="ONNX Runtime",
    libraries=("torch", "onnx", "onnxscript", "onnxruntime"),
    imports=("torch", "torchvision", "onnxruntime"),  # torch first: ORT's CUDA EP finds torch's cuDNN
    artifact=ExportLayout(ext="onnx", per_image_size=True),
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
                      input_names=[ort_session.INPUT], output_names=[ort_session.OUTPUT], dynamic_shapes=({0: batch},),
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
        session = ort_session.create_session(str(request.artifact), "cuda", request.precision, request.options, nhwc,
                                             None)
        wrapper = ort_session.OrtSession(session, "cuda", request.precision, {})
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
        session = ort_session.create_session(path, "cpu", request.precision, request.options, False, request.threads)
        return ort_session.OrtSession(session, "cpu", request.precision,
                                      {**info, "providers": session.get_providers(), "threads": request.threads})
    prefer_nhwc = request.options["prefer_nhwc"]
    if prefer_nhwc == "auto":
        raise ValueError("prefer_nhwc 'auto' must be resolved by tune() before load()")
    stream = ort_session.compute_stream(request.options)

    def create():
        return ort_session.create_session(path, "cuda", request.precision, request.options, bool(prefer_nhwc), None,
                                          stream)

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
    info["intra_op_threads"] = ort_session.CUDA_INTRA_OP_THREADS
    if "prefer_nhwc_trial" in request.options:
        info["prefer_nhwc_trial"] = request.options["prefer_nhwc_trial"]
    return ort_session.OrtSession(session, "cuda", request.precision, info,
                                  cuda_graph=bool(request.options["enable_cuda_graph"]), remake=create,
                                  shared_stream=shared)
