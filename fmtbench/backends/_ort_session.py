"""ONNX Runtime sessions for the onnx backend: session and CUDA provider options, the session made and checked
(no silent fallback to the CPU), the compute stream shared with torch, and IO binding on torch tensors.
The backend's choices are said in fmtbench/backends/onnx.py; this module runs them."""
from __future__ import annotations

from fmtbench.backends import _torchutil as tu

# the exported graph's input and output names (the export gives them, a session binds them)
INPUT, OUTPUT = "input", "logits"
# CUDA sessions: one intra-op thread (the graph runs on the GPU; ORT's maintainers advise 1 where the CPU does no
# heavy work). ORT's default pool has a thread per physical core of the machine, each pinned by ORT to its core
# whatever the process's own affinity, spinning after each run: on the cores of the study's CPU rows too.
CUDA_INTRA_OP_THREADS = 1


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


def create_session(path: str, device: str, precision: str, options: dict, prefer_nhwc: bool, threads: int | None,
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

