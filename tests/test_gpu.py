"""CUDA behaviour of the backends (marker gpu: skipped without a GPU; run on the lent H100)."""
import os

import pytest
import torch

from fmtbench import accuracy, backends, data, export, isolation, memory, model, study
from fmtbench.backends import onnx as onnx_backend
from fmtbench.backends import torch as torch_backend
from fmtbench.backends.base import LoadRequest
from fmtbench.data import InputFormat

pytestmark = pytest.mark.gpu


@pytest.fixture(autouse=True)
def default_stream():
    """ONNX Runtime's load makes a stream of its own current for the process (as in a measuring process): each test
    here starts on torch's default stream again."""
    yield
    if torch.cuda.is_available():
        torch.cuda.synchronize()
        torch.cuda.set_stream(torch.cuda.default_stream())


def _request(weights, fmt, precision, artifact=None, size=64, batches=(4, 8), **options):
    return LoadRequest(precision=precision, device="cuda", image_size=size, batch_sizes=batches, state_dict=weights,
                       artifact=artifact, options={**study.spec(fmt).options, **options})


def _export(weights, tmp_path, fmt, precision, device="cuda", size=64, **options):
    spec = study.spec(fmt)
    export_device, export_size = study.export_keys(fmt, device, size)
    artifact = tmp_path / f"{fmt}-{precision}.{spec.artifact.ext}"
    provenance = export.run(fmt, precision, export_device, export_size, weights, [4, 8],
                            {**spec.options, **options}, artifact, tmp_path / f"{fmt}-{precision}.json")
    assert provenance["status"] == "ok", provenance["reason"]
    return artifact, provenance


def _reference(weights, batch):
    with torch.no_grad():
        return model.build(weights)(batch.cpu())


def _logits(session, batch):
    return session.logits(session.run(session.prepare(batch)))


def _agrees(logits, reference, precision="fp16", fp32_math="strict"):
    """Within the accuracy check's relative limit for the arithmetic (fp16: 2.1e-3), not an absolute 0.1."""
    result = accuracy.compare(logits.numpy(), reference.numpy(), precision, fp32_math)
    return result["within_limit"], result["max_rel_error"]


def test_torch_fp16_is_half_channels_last_and_agrees(weights):
    session = torch_backend.load(_request(weights, "torch", "fp16"))
    assert next(session.module.parameters()).dtype == torch.float16
    assert session.info["memory_format"] == "channels_last"
    batch = data.dummy_batch(8, 64, "cuda")
    assert session.prepare(batch).is_contiguous(memory_format=torch.channels_last)
    assert _agrees(_logits(session, batch), _reference(weights, batch))[0]


def test_fp32_is_strict_by_default_and_tf32_only_when_asked(weights):
    session = torch_backend.load(_request(weights, "torch", "fp32"))
    assert session.info["math"] == "fp32" and not torch.backends.cudnn.allow_tf32
    batch = data.dummy_batch(8, 64, "cuda")
    assert _agrees(_logits(session, batch), _reference(weights, batch), "fp32")[0]
    session = torch_backend.load(_request(weights, "torch", "fp32", fp32_math="tf32"))
    assert session.info["math"] == "tf32" and torch.backends.cudnn.allow_tf32  # PyTorch's default
    assert not torch.backends.cuda.matmul.allow_tf32  # ... and so is full-precision matmul


def test_cuda_graph_replay_matches_eager_and_takes_new_inputs(weights):
    eager = torch_backend.load(_request(weights, "torch", "fp16"))
    graphed = torch_backend.load(_request(weights, "torch", "fp16", cuda_graph=True))
    for seed in (0, 1):
        batch = data.dummy_batch(8, 64, "cuda", seed=seed)
        assert torch.equal(_logits(graphed, batch), _logits(eager, batch))


def test_autocast_variant_keeps_fp32_weights(weights):
    session = torch_backend.load(_request(weights, "torch", "fp16", autocast=True))
    assert next(session.module.parameters()).dtype == torch.float32
    assert session.info["math"] == "fp16_autocast"
    out = session.run(session.prepare(data.dummy_batch(4, 64, "cuda")))
    assert out.dtype == torch.float16


def test_onnx_runs_on_cuda_ep_with_io_binding_fp16_and_no_cudnn_fallback(weights, tmp_path, capfd):
    artifact, provenance = _export(weights, tmp_path, "onnx", "fp16", device="any")
    assert provenance["details"]["float_initializer_types"] == ["FLOAT16"]
    capfd.readouterr()
    session = onnx_backend.load(_request(weights, "onnx", "fp16", artifact, prefer_nhwc=False))
    batch = data.dummy_batch(8, 64, "cuda")
    logits = _logits(session, batch)
    log = capfd.readouterr().err
    assert session.info["providers"][0] == "CUDAExecutionProvider"
    assert session.info["cudnn_conv_algo_search"] == "EXHAUSTIVE"
    assert "Fallback mode" not in log, log[-2000:]
    out = session.run(session.prepare(batch))
    assert out.dtype == torch.float16 and out.device.type == "cuda"
    assert _agrees(logits, _reference(weights, batch))[0]


def test_onnx_runs_on_the_processs_stream_so_its_device_time_is_measured(weights, tmp_path):
    """ORT's kernels on the torch stream the process made current (user_compute_stream): a spin kernel queued on
    it first delays them, so timing.GpuTime measures ORT's device time as it does torch's."""
    from fmtbench import timing
    artifact, _ = _export(weights, tmp_path, "onnx", "fp16", device="any")
    session = onnx_backend.load(_request(weights, "onnx", "fp16", artifact, prefer_nhwc=False))
    assert not session.own_stream and "user_compute_stream" in session.info["compute_stream"]
    assert session.info["intra_op_threads"] == 1
    assert torch.cuda.current_stream().cuda_stream != 0
    batch = data.dummy_batch(8, 64, "cuda")
    prepared = session.prepare(batch)
    clock, gpu = timing.CudaClock(), timing.GpuTime()
    session.run(prepared)
    host = sorted(clock.time(lambda: session.run(prepared)) * 1e3 for _ in range(9))[4]
    device = sorted(gpu.time(lambda: session.run_queued(prepared), host) for _ in range(5))[2]
    waited = sorted(gpu.time(lambda: session.run(prepared), host) for _ in range(5))[2]
    assert 0 < device <= host * 1.05 and device <= waited, (device, waited, host)
    assert _agrees(_logits(session, batch), _reference(weights, batch))[0]
    torch.cuda.synchronize()
    assert torch.equal(session.logits(session.run_queued(prepared)), session.logits(session.run(prepared)))


def test_onnx_cuda_graph_replays_new_inputs(weights, tmp_path):
    artifact, _ = _export(weights, tmp_path, "onnx", "fp16", device="any")
    plain = onnx_backend.load(_request(weights, "onnx", "fp16", artifact, prefer_nhwc=False))
    graphed = onnx_backend.load(_request(weights, "onnx", "fp16", artifact, prefer_nhwc=False, enable_cuda_graph=True))
    for seed in (0, 1, 2):
        batch = data.dummy_batch(8, 64, "cuda", seed=seed)
        assert (_logits(graphed, batch) - _logits(plain, batch)).abs().max() < 1e-2


def test_prefer_nhwc_is_measured_both_ways(weights, tmp_path):
    artifact, _ = _export(weights, tmp_path, "onnx", "fp16", device="any")
    tuned = onnx_backend.tune(_request(weights, "onnx", "fp16", artifact))
    medians = tuned["prefer_nhwc_trial"]["median_ms"]
    assert set(medians) == {"nchw", "nhwc"} and tuned["prefer_nhwc_trial"]["interleaved"]
    assert tuned["prefer_nhwc"] == onnx_backend.prefer_nhwc_decision(medians["nchw"], medians["nhwc"])


def test_ort_fp16_input_made_in_its_final_form_costs_no_staging_memory(weights, tmp_path):
    """The fp32 dummy batch cast in prepare() put +38.5 MB on ORT fp16 rows at 224² batch 64 (torch could reuse
    the freed block, ORT could not)."""
    artifact, _ = _export(weights, tmp_path, "onnx", "fp16", device="any", size=224)
    request = _request(weights, "onnx", "fp16", artifact, size=224, batches=(64,), prefer_nhwc=False)
    batch = data.DummySource(data.SourceRequest("cuda", 224, 64, 0, None, onnx_backend.input_format(request))).batch
    session = onnx_backend.load(request)
    prepared = session.prepare(batch)
    assert prepared[1].data_ptr() == batch.data_ptr(), "bound as it is: no cast, no copy"


def test_device_memory_tracker_sees_onnxruntime(weights, tmp_path):
    """The seed read 36.8 MB for ORT: torch's allocator cannot see ORT's arena. Device memory can."""
    artifact, _ = _export(weights, tmp_path, "onnx", "fp16", device="any", size=224)
    torch.zeros(1, device="cuda")
    tracker = memory.CudaTracker().start()
    torch.cuda.reset_peak_memory_stats()  # earlier tests' allocations are not this session's
    session = onnx_backend.load(_request(weights, "onnx", "fp16", artifact, size=224, batches=(64,), prefer_nhwc=False))
    session.run(session.prepare(data.dummy_batch(64, 224, "cuda")))
    record = {**tracker.stop(), **memory.torch_peaks()}
    assert record["allocated_mb"] > 100, record
    assert record["torch_max_allocated_mb"] < record["allocated_mb"]


def test_torchscript_cuda_export_loads_and_agrees(weights, tmp_path):
    from fmtbench.backends import torchscript
    artifact, _ = _export(weights, tmp_path, "torchscript", "fp16", size="any")
    session = torchscript.load(_request(weights, "torchscript", "fp16", artifact))
    batch = data.dummy_batch(8, 64, "cuda")
    assert _agrees(_logits(session, batch), _reference(weights, batch))[0]


def test_torch_compile_loads_from_the_exported_cache_and_agrees(weights, tmp_path):
    artifact, provenance = _export(weights, tmp_path, "inductor", "fp16")
    details = provenance["details"]
    assert details["graphs_compiled"] == 1 and details["warm_load"]["cache"].get("fxgraph_cache_hit") == 1
    session = backends.get("inductor").load(_request(weights, "inductor", "fp16", artifact))
    for batch_size in (4, 8):  # dynamic batch
        batch = data.dummy_batch(batch_size, 64, "cuda")
        assert _agrees(_logits(session, batch), _reference(weights, batch))[0]
    assert session.info["inductor_cache"].get("fxgraph_cache_hit") == 1


def test_gpu_decode_matches_cpu_decode(tmp_path):
    from fmtbench import images
    paths = [str(p) for p in images.generate(tmp_path, count=4, seed=0)]
    items = [(path, open(path, "rb").read()) for path in paths]
    on_gpu = data.decode_on_gpu(items, 64)
    on_cpu, _ = data.ImageFiles(paths, 64).__getitems__(range(4))
    assert on_gpu.shape == on_cpu.shape and on_gpu.device.type == "cuda"
    assert (on_gpu.cpu().float() - on_cpu.float()).abs().mean() < 3  # decoders differ by rounding only


def test_gpu_decode_source_runs_ahead_of_the_model(tmp_path):
    from fmtbench import images
    from fmtbench.atomic import write_json
    paths = images.generate(tmp_path / "images", count=64, seed=0)
    manifest = tmp_path / "manifest.json"
    write_json(manifest, images.manifest(paths, "generated"))  # with nvJPEG flags: GPU decode really on the GPU
    source = data.GpuDecodeSource(data.SourceRequest("cuda", 224, 32, 2, str(manifest),
                                                     InputFormat("float16", True)))
    source.start()
    first = source.next()
    assert first.dtype == torch.float16 and first.is_contiguous(memory_format=torch.channels_last)
    source.start_timing()
    for _ in range(10):
        source.next()
        torch.cuda._sleep(5_000_000)  # a "model" that keeps the GPU busy: decoding goes on beside it
    stats = source.stats()
    source.close()
    assert stats["decode_capacity_fps"] > 0 and stats["data_wait_ms"]["median"] < 5


def test_device_monitor_sees_what_torch_allocates_from_outside_the_process():
    """The NVML monitor behind every CUDA memory figure, against torch's own counters: a 256 MB load and a 256 MB
    peak freed before the end are both seen (the allocator's cache is device memory in use)."""
    status, reason, value = _monitored("allocates", 256)
    assert status == "ok", reason
    readings, peaks = value
    record = readings["memory"]
    assert record.load_mb == pytest.approx(256, abs=4)
    assert record.allocated_mb == pytest.approx(256 + 256, abs=8)
    assert peaks["torch_max_allocated_mb"] == pytest.approx(512, abs=1)


def test_grouped_configurations_read_the_memory_a_fresh_process_reads(weights, tmp_path):
    """Batch 8 measured after batch 64 in one process (graphs, allocator cache and workspaces released between
    them) against batch 8 alone: within 5 % or 20 MB, for eager fp16 and its CUDA-graph variant."""
    import sys
    from dataclasses import replace

    from measuring import cpu_request
    tests = os.path.dirname(__file__)
    for options in ({"cuda_graph": False}, {"cuda_graph": True}):
        base = replace(cpu_request(weights, tmp_path, (8, 64), processes=2), device="cuda", precision="fp16",
                       image_size=224, options={"fp32_math": "strict", "autocast": False, **options})
        jobs = [replace(base, outputs={k: str(tmp_path / f"g-{k[1]}.json") for k in base.outputs}),
                replace(base, batch_sizes=(8,), outputs={("dummy", 8): str(tmp_path / "f-8.json")})]
        jobs[1] = replace(jobs[1], measurement=jobs[1].measurement.with_processes(1))
        outcome = isolation.run_interpreter("helpers_isolated:memory_of_jobs", jobs,
                                            env={"PYTHONPATH": os.pathsep.join([tests, *sys.path])})
        assert outcome.status == "ok", outcome.reason
        grouped, fresh = outcome.value
        alone = fresh[8][1]
        for position in (1, 2):
            assert grouped[8][position] == pytest.approx(alone, abs=max(20.0, 0.05 * alone)), (options, grouped, fresh)


def _monitored(name, *args):
    """A helpers_isolated function forked under the NVML monitor from a fresh interpreter (this pytest process
    has initialised CUDA: a child forked from it could not)."""
    import sys
    outcome = isolation.run_interpreter("helpers_isolated:forked_with_monitor", name, *args,
                                        env={"PYTHONPATH": os.pathsep.join([os.path.dirname(__file__), *sys.path])})
    assert outcome.status == "ok", outcome.reason
    return outcome.value


def test_gpu_decode_rows_memory_is_the_models_plus_the_loaders_own(weights, tmp_path):
    """The decoder started before the baseline: its queue was in every GPU-decode row's baseline and in inductor's
    load figure (309 MB instead of 22). Now the loader's memory is in the row's figure: at least what the loader
    alone or the model alone holds, at most their sum (one process's caching allocator reuses blocks between the
    decoder and the model: on the H100, batch 32 fp16, the model alone 220 MB, the loader alone 253, the row 367)."""
    import sys
    from dataclasses import replace

    from measuring import cpu_request

    from fmtbench import images
    from fmtbench.atomic import write_json
    paths = images.generate(tmp_path / "images", count=64, seed=0)
    manifest = tmp_path / "manifest.json"
    write_json(manifest, images.manifest(paths, "generated"))
    job = replace(cpu_request(weights, tmp_path, (32,), loaders=("dummy", "real_gpu_decode")), device="cuda",
                  precision="fp16", image_size=224, manifest=str(manifest), loader_workers=2,
                  options={"fp32_math": "strict", "autocast": False, "cuda_graph": False})
    tests = os.path.dirname(__file__)
    outcome = isolation.run_interpreter("helpers_isolated:memory_of_jobs", [job],
                                        env={"PYTHONPATH": os.pathsep.join([tests, *sys.path])})
    assert outcome.status == "ok", outcome.reason
    rows = outcome.value[0][32]  # one dict per batch: both loaders write the same key, so read the JSONs
    from fmtbench.atomic import read_json
    dummy, decoded = (read_json(job.outputs[(loader, 32)]) for loader in ("dummy", "real_gpu_decode"))
    # one load each, no queue in it: the rows are measured in processes of their own now (the model alone apart from
    # the real loaders), whose loads read 44 and 42 MB on the H200 (2026-12-02)
    assert dummy["memory"]["load_mb"] == pytest.approx(decoded["memory"]["load_mb"], abs=4)
    status, reason, alone = _monitored("loader_alone", str(manifest), 32)
    assert status == "ok", reason
    both = dummy["memory"]["allocated_mb"] + alone
    assert max(dummy["memory"]["allocated_mb"], alone) <= decoded["memory"]["allocated_mb"] <= both + max(
        20.0, 0.05 * both), (dummy["memory"], decoded["memory"], alone, rows)


def test_a_cuda_group_with_every_loader_feeds_every_batch_size_from_the_same_workers(weights, tmp_path):
    """The real loaders' workers stay running across the configurations of a process (pinned chunks copied into
    one device buffer; GPU decode over a batch's chunks of bytes): batch 32 then 64 (and the reverse in the second
    process), every loader, every row measured with its loader's statistics."""
    import sys
    from dataclasses import replace

    from measuring import cpu_request

    from fmtbench import images
    from fmtbench.atomic import write_json
    paths = images.generate(tmp_path / "images", count=64, seed=0)
    manifest = tmp_path / "manifest.json"
    write_json(manifest, images.manifest(paths, "generated"))
    job = replace(cpu_request(weights, tmp_path, (32, 64), loaders=("real", "dummy", "real_gpu_decode"), processes=2,
                           max_processes=2),
                  device="cuda", precision="fp16", image_size=224, manifest=str(manifest), loader_workers=3,
                  options={"fp32_math": "strict", "autocast": False, "cuda_graph": True})
    tests = os.path.dirname(__file__)
    outcome = isolation.run_interpreter("helpers_isolated:rows_of_jobs", [job],
                                        env={"PYTHONPATH": os.pathsep.join([tests, *sys.path])})
    assert outcome.status == "ok", outcome.reason
    rows = outcome.value[0]
    assert len(rows) == 6
    for (loader, batch), (status, reason, stats) in rows.items():
        assert status == "ok", (loader, batch, reason)
        if loader != "dummy":
            assert stats["batches_timed"] >= 12 and stats["decode_capacity_fps"] > 0, (loader, batch, stats)


def test_gpu_time_hides_the_launches_and_tells_a_host_bound_call_from_a_gpu_bound_one():
    """Many tiny kernels: the host launches them slower than the GPU runs them, so a synchronised call is mostly
    launch time and the GPU busy share is low; one large matrix product: the GPU is busy for almost all of it."""
    import time

    from fmtbench import timing
    small = torch.ones(64, device="cuda")
    big = torch.randn(4096, 4096, device="cuda")

    def tiny():
        for _ in range(300):
            small.add_(1)

    def large():
        big @ big

    clock, gpu = timing.CudaClock(), timing.GpuTime()
    for call in (tiny, large):
        call()
    shares = {}
    for name, call in (("tiny", tiny), ("large", large)):
        host = sorted(clock.time(call) * 1e3 for _ in range(9))[4]
        device = sorted(gpu.time(call, host) for _ in range(5))[2]
        shares[name] = device / host
        assert 0 < device <= host * 1.05, (name, device, host)
    assert shares["tiny"] < 0.5 and shares["large"] > 0.9, shares
    started = time.perf_counter()
    gpu.time(large, 5.0)
    assert time.perf_counter() - started < 1.0, "the spin lasts about twice the host time, not more"
