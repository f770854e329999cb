"""Helpers shared by the torch-based backends (eager, TorchScript, inductor, Torch-TensorRT)."""
from __future__ import annotations

from fmtbench.backends.base import InputFormat, LoadRequest, Unavailable, math_of


def dtype(precision: str):
    import torch
    return {"fp16": torch.float16, "fp32": torch.float32}[precision]


def memory_format(device: str, precision: str):
    """channels_last where Tensor Cores want NHWC (CUDA fp16); contiguous NCHW otherwise."""
    import torch
    return torch.channels_last if device == "cuda" and precision == "fp16" else torch.contiguous_format


def input_format(request: LoadRequest) -> InputFormat:
    """The dtype of the precision, channels_last where the model runs in it (CUDA fp16)."""
    return InputFormat(dtype="float16" if request.precision == "fp16" else "float32",
                       channels_last=request.device == "cuda" and request.precision == "fp16")


def require_device(device: str) -> None:
    import torch
    if device == "cuda" and not torch.cuda.is_available():
        raise Unavailable("CUDA is not available to torch on this machine")


def configure_cuda_math(precision: str, fp32_math: str = "strict") -> str:
    """cuDNN autotuning on. Strict fp32 (our default): TF32 off for convolutions and matmuls. `tf32`: PyTorch's
    own defaults, exactly — TF32 convolutions (cudnn.allow_tf32 defaults to True), matmuls in full fp32
    (matmul.allow_tf32 defaults to False). Returns the MATH key."""
    import torch
    torch.backends.cudnn.benchmark = True
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = precision == "fp32" and fp32_math == "tf32"
    return math_of(precision, fp32_math)


def eval_model(state_dict_path, precision: str, device: str):
    """The ResNet-18 on `device` in `precision`, in the memory format that suits it."""
    from fmtbench import model
    return model.build(state_dict_path).to(device=device, dtype=dtype(precision),
                                           memory_format=memory_format(device, precision))


class TorchModuleSession:
    """A callable torch module (eager, scripted, compiled, TensorRT) behind the Session interface."""

    def __init__(self, module, precision: str, device: str, info: dict, input_memory_format=None):
        self.module = module
        self.dtype = dtype(precision)
        self.memory_format = input_memory_format or memory_format(device, precision)
        self.info = {"memory_format": "channels_last" if "channels_last" in str(self.memory_format)
                     else "contiguous", **info}

    def prepare(self, batch):
        return batch.to(dtype=self.dtype, memory_format=self.memory_format)

    def run(self, inputs):
        import torch
        with torch.inference_mode():
            return self.module(inputs)

    def logits(self, output):
        return output.float().cpu()


_SIDE_STREAM = None


def side_stream():
    """One side stream per process for warm-ups before a CUDA-graph capture: libraries keep per-stream state
    (cuBLAS's workspace per handle and stream), which a new stream per capture would allocate anew each time."""
    global _SIDE_STREAM
    import torch
    if _SIDE_STREAM is None:
        _SIDE_STREAM = torch.cuda.Stream()
    return _SIDE_STREAM


class CudaGraphSession:
    """Replays one CUDA graph per input shape, captured on first use; inputs are copied into its buffer.

    The copy happens in `prepare` (outside the model timer, inside end-to-end time), the replay in `run`.
    """

    def __init__(self, session: TorchModuleSession, warmup: int = 3):
        self.session = session
        self.info = {**session.info, "cuda_graph": True}
        self._warmup = warmup
        self._graphs: dict = {}

    def _capture(self, example):
        import torch
        static_input = example.clone()
        side = side_stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for _ in range(self._warmup):  # cuDNN autotuning and allocations happen before capture
                self.session.run(static_input)
        torch.cuda.current_stream().wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        # thread_local: a GPU-decode loader's threads keep launching their own work while this thread captures
        with torch.cuda.graph(graph, capture_error_mode="thread_local"):
            static_output = self.session.run(static_input)
        return graph, static_input, static_output

    def prepare(self, batch):
        inputs = self.session.prepare(batch)
        key = (tuple(inputs.shape), inputs.dtype)
        if key not in self._graphs:
            self._graphs[key] = self._capture(inputs)
        else:
            self._graphs[key][1].copy_(inputs)
        return key

    def run(self, key):
        graph, _, static_output = self._graphs[key]
        graph.replay()
        return static_output

    def release(self, next_batch_size: int | None = None) -> None:
        """The graphs and their memory pools go: the next configuration captures its own (its figure holds it)."""
        self._graphs.clear()

    def logits(self, output):
        return output.float().cpu()
