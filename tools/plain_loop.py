"""Plain loops written directly against each library, sharing no code with the harness (fmtbench.measure): the
reference a harness figure is held against (tools/ablation.py, tools/perf_check.py).

A loop: warm-up, then `calls` calls each between two synchronisations (perf_counter; the median is the latency),
then blocks of calls back to back with one synchronisation per block (the median block rate is the throughput).
`serve` runs in a process of its own and keeps the calls it made, so segments of several rows can be interleaved
with other processes (a harness's) on the same clock.
"""
import os
import statistics
import time
from pathlib import Path

WARMUP, CALLS, BLOCK_CALLS, BLOCKS = 30, 200, 25, 5


def _sync(device: str) -> None:
    import torch
    if device == "cuda":
        torch.cuda.synchronize()


def _model(weights, precision, memory_format=None, device="cuda"):
    import torch

    from fmtbench import model
    net = model.build(weights).to(device).eval()
    if precision == "fp16":
        net = net.half()
    return net.to(memory_format=memory_format or torch.contiguous_format)


def make_call(spec: dict):
    """A call of `spec["name"]` (a row's format) at `spec["precision"]`, on a seeded random batch of
    `spec["batch"]` × 3 × `spec["size"]`²; `spec["artifact"]` the export where the format runs one."""
    import torch
    name, precision, size, batch = spec["name"], spec["precision"], spec["size"], spec["batch"]
    weights, artifact, device = spec.get("weights"), spec.get("artifact"), spec.get("device", "cuda")
    torch.manual_seed(0)
    torch.backends.cudnn.benchmark = True
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = name.endswith("tf32")
    half_cl = precision == "fp16"
    layout = torch.channels_last if half_cl or name == "torch_autocast" else torch.contiguous_format
    x = torch.randn(batch, 3, size, size, device=device)
    x = (x.half() if half_cl else x).contiguous(memory_format=layout)
    inference = spec.get("inference_mode", True)
    if name in ("torch", "torch_tf32", "torch_cudagraph", "torch_autocast"):
        net = _model(weights, "fp32" if name == "torch_autocast" else precision, layout, device)
        if name == "torch_autocast":
            def call():
                with torch.inference_mode(inference), torch.autocast("cuda", dtype=torch.float16):
                    return net(x)
            return call
        if name == "torch_cudagraph":
            side = torch.cuda.Stream()
            side.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(side), torch.inference_mode():
                for _ in range(3):
                    net(x)
            torch.cuda.current_stream().wait_stream(side)
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph), torch.inference_mode():
                net(x)
            return graph.replay

        def call():
            with torch.inference_mode(inference):
                return net(x)
        return call
    if name == "torchscript":
        net = torch.jit.optimize_for_inference(torch.jit.load(str(artifact), map_location=device))

        def call():
            with torch.inference_mode(inference):
                return net(x)
        return call
    if name == "inductor":
        import torch._inductor.config
        from torch.fx.experimental.optimization import fuse
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = str(Path(artifact, "inductor").resolve())
        os.environ["TRITON_CACHE_DIR"] = str(Path(artifact, "triton").resolve())
        torch._inductor.config.fx_graph_cache = True
        net = fuse(_model(weights, "fp32"))
        net = torch.compile(net.half().to(memory_format=layout), mode="reduce-overhead", dynamic=False)
        if spec.get("batch_sizes") and len(set(spec["batch_sizes"])) > 1:
            torch._dynamo.mark_dynamic(x, 0, min=min(spec["batch_sizes"]), max=max(spec["batch_sizes"]))

        def call():
            with torch.no_grad():
                return net(x)
        return call
    if name in ("onnx", "onnx_tf32"):
        import numpy as np
        import onnxruntime as ort
        provider = {"cudnn_conv_algo_search": "EXHAUSTIVE", "prefer_nhwc": "1" if half_cl else "0"}
        provider.update(spec.get("provider_options") or {})
        if precision == "fp32":
            provider["use_tf32"] = "1" if name == "onnx_tf32" else "0"
        options = ort.SessionOptions()  # the harness's session options: one intra-op thread on CUDA
        options.intra_op_num_threads, options.inter_op_num_threads = 1, 1
        session = ort.InferenceSession(str(artifact), sess_options=options,
                                       providers=[("CUDAExecutionProvider", provider), "CPUExecutionProvider"])
        assert session.get_providers()[0] == "CUDAExecutionProvider"
        xc = x.contiguous()
        out = torch.empty(batch, 1000, dtype=xc.dtype, device="cuda")
        kind = np.float16 if half_cl else np.float32
        binding = session.io_binding()
        binding.bind_input(session.get_inputs()[0].name, "cuda", 0, kind, list(xc.shape), xc.data_ptr())
        binding.bind_output(session.get_outputs()[0].name, "cuda", 0, kind, list(out.shape), out.data_ptr())
        torch.cuda.synchronize()
        return lambda: session.run_with_iobinding(binding)
    raise ValueError(f"no plain loop for {name}")


def segment(call, batch: int, calls: int = CALLS, warmup: int = WARMUP, device: str = "cuda") -> dict:
    """(median latency ms, fastest call ms, median back-to-back images / s) of one stretch of the loop."""
    for _ in range(warmup):
        call()
    _sync(device)
    times = []
    for _ in range(calls):
        _sync(device)
        start = time.perf_counter()
        call()
        _sync(device)
        times.append((time.perf_counter() - start) * 1e3)
    rates = []
    for _ in range(BLOCKS):
        _sync(device)
        start = time.perf_counter()
        for _ in range(BLOCK_CALLS):
            call()
        _sync(device)
        rates.append(batch * BLOCK_CALLS / (time.perf_counter() - start))
    return {"latency_ms": statistics.median(times), "latency_min_ms": min(times),
            "throughput_fps": statistics.median(rates), "at": time.time()}


def serve(connection) -> None:
    """In a process of its own: ("make", key, spec) builds a call; ("segment", key, calls) runs a stretch of it;
    ("stop",) ends. Every answer is ("ok", value) or ("error", text)."""
    calls = {}
    while True:
        message = connection.recv()
        if message[0] == "stop":
            connection.send(("ok", None))
            return
        try:
            if message[0] == "make":
                _, key, spec = message
                calls[key] = (make_call(spec), spec["batch"], spec.get("device", "cuda"))
                connection.send(("ok", None))
            else:
                _, key, count = message
                call, batch, device = calls[key]
                connection.send(("ok", segment(call, batch, count, device=device)))
        except Exception as err:  # noqa: BLE001 - the driver records it and goes on
            connection.send(("error", f"{type(err).__name__}: {err}"[:500]))


class Server:
    """The loop process, from the driver's side (the driver itself never initialises CUDA)."""

    def __init__(self):
        import multiprocessing
        context = multiprocessing.get_context("spawn")
        self.connection, child_end = context.Pipe()
        self.process = context.Process(target=serve, args=(child_end,), daemon=True)
        self.process.start()

    def ask(self, *message):
        self.connection.send(message)
        status, value = self.connection.recv()
        if status != "ok":
            raise RuntimeError(value)
        return value

    def stop(self):
        try:
            self.ask("stop")
        finally:
            self.process.join(30)
