"""The loaders: a real loader that never drains, decode capacity, inputs made in the format's final form."""
import math
import time

import pytest
import torch

from fmtbench import backends, data, stats
from fmtbench.atomic import write_json
from fmtbench.backends.base import LoadRequest
from fmtbench.data import InputFormat
from fmtbench.scope import Scope

DECODE_S = 0.02   # per image, in a worker


def _slow_image(self, index):
    time.sleep(DECODE_S)
    return torch.zeros(3, 8, 8, dtype=torch.uint8)


@pytest.fixture
def small_image_set(tmp_path, monkeypatch):
    """4 images, each 20 ms to decode (sleep: no CPU used, so two cores do not distort the figures)."""
    monkeypatch.setattr(data.ImageFiles, "__getitem__", _slow_image)  # forked workers inherit it
    manifest = tmp_path / "manifest.json"
    write_json(manifest, {"images": [{"path": f"img{i}.jpg"} for i in range(4)]})
    return manifest


def _rate(next_batch, batch_size, batches=24, model_s=0.001):
    for _ in range(8):
        next_batch()
    start = time.perf_counter()
    for _ in range(batches):
        next_batch()
        time.sleep(model_s)
    return batches * batch_size / (time.perf_counter() - start)


@pytest.mark.filterwarnings("ignore:This DataLoader will create")
def test_real_loader_keeps_every_worker_busy_on_a_small_image_set(small_image_set):
    """4 images at batch 2 are 2 batches an epoch: an epoch-by-epoch loader keeps 2 of its 4 workers busy and
    drains at every epoch boundary (the H100 report showed 1.5-1.7k img/s end to end for every format)."""
    workers, batch = 4, 2
    capacity = workers * batch / (batch * DECODE_S)   # 200 img/s

    def old_endless(loader):
        while True:
            yield from loader
    class OldImageFiles(data.ImageFiles):
        __getitems__ = None   # image by image, collated by the DataLoader, as before
    from torch.utils.data import DataLoader
    old = old_endless(DataLoader(OldImageFiles(["x"] * 4, 8), batch_size=batch, drop_last=True,
                                 num_workers=workers, persistent_workers=True, prefetch_factor=4))
    old_rate = _rate(lambda: next(old), batch)

    source = data.RealSource(data.SourceRequest("cpu", 8, batch, workers, str(small_image_set)))
    source.start()
    new_rate = _rate(source.next, batch)
    stats = source.stats()
    source.close()
    assert old_rate < 0.65 * capacity, old_rate
    assert new_rate > 0.8 * capacity, new_rate
    assert stats["decode_capacity_fps"] == pytest.approx(capacity, rel=0.25)
    assert stats["data_wait_ms"]["p90"] >= stats["data_wait_ms"]["median"]


def test_dummy_input_is_made_in_the_final_dtype_and_layout_so_prepare_copies_nothing(weights, tmp_path):
    """The harness's fp32 staging copy used to be made after the memory baseline and cast in prepare()."""
    source = data.DummySource(data.SourceRequest("cpu", 32, 2, 0, None, InputFormat("float16", True)))
    assert source.batch.dtype == torch.float16 and source.batch.is_contiguous(memory_format=torch.channels_last)
    for name in ("torch", "onnx"):
        backend = backends.get(name)
        request = LoadRequest("fp32", "cpu", 32, (2,), weights, None, backend.SPEC.options, 1)
        fmt = backend.input_format(request)
        batch = data.DummySource(data.SourceRequest("cpu", 32, 2, 0, None, fmt)).batch
        if name == "torch":
            prepared = backend.load(request).prepare(batch)
            assert prepared.data_ptr() == batch.data_ptr()
        assert fmt == InputFormat("float32", False)


def test_cuda_fp16_torch_formats_want_channels_last_and_ort_contiguous(weights):
    for name, channels_last in (("torch", True), ("torchscript", True), ("inductor", True), ("onnx", False),
                                ("torch_trt", False)):
        backend = backends.get(name)
        request = LoadRequest("fp16", "cuda", 224, (64,), weights, None, backend.SPEC.options)
        assert backend.input_format(request) == InputFormat("float16", channels_last), name


def test_loader_registry_is_the_one_place_for_loader_names():
    assert set(data.LOADERS) == {"real", "dummy", "real_gpu_decode"}
    assert data.loaders_for(["real", "dummy", "real_gpu_decode"], "cpu") == ["real", "dummy"]
    assert data.loader("real").min_timed_batches(12) == 48 and data.loader("dummy").min_timed_batches(12) == 0
    assert {name: loader.scenario for name, loader in data.LOADERS.items()} == {
        "real": Scope.END_TO_END, "dummy": Scope.MODEL_ALONE, "real_gpu_decode": Scope.END_TO_END}
    assert stats.KINDS == ("latency", "under_load"), "the words rows record for the two scopes"


def test_a_manifest_without_nvjpeg_flags_is_refused_not_decoded_on_the_cpu(tmp_path):
    """data.nvjpeg_paths returned an empty set for such a manifest: every image was decoded on the CPU under the
    GPU-decode loader's name (the 43.6 ms data wait of tests/test_gpu_measurement.py)."""
    from fmtbench.atomic import write_json
    manifest = tmp_path / "manifest.json"
    write_json(manifest, {"images": [{"path": "a.jpg"}, {"path": "b.jpg"}]})
    with pytest.raises(data.ManifestError, match="2 of 2 images have no 'nvjpeg' flag"):
        data.nvjpeg_paths(manifest)
    write_json(manifest, {"images": [{"path": "a.jpg", "nvjpeg": True}, {"path": "b.png", "nvjpeg": False}]})
    assert data.nvjpeg_paths(manifest) == {"a.jpg"}


def _workers() -> set[int]:
    """The worker processes this process runs now."""
    import psutil
    return {child.pid for child in psutil.Process().children(recursive=True) if child.is_running()}


def test_a_real_loader_starts_its_workers_only_when_started(small_image_set):
    """Started after the configuration's memory baseline, so what the loader holds is in its figure."""
    before = _workers()
    source = data.RealSource(data.SourceRequest("cpu", 8, 2, 1, str(small_image_set)))
    assert _workers() == before, "made, not started: no worker yet"
    source.start()
    assert source.next().shape == (2, 3, 8, 8)
    assert len(_workers() - before) == 1
    source.close()
    assert _workers() == before, "its own workers end with it"


def test_chunks_divide_every_batch_size():
    assert data.chunk_size([32, 40, 48, 56, 64]) == 8
    assert data.chunk_size([32, 64]) == 8 and data.chunk_size([2]) == 2 and data.chunk_size([6, 9]) == 3
    assert data.chunk_size([7]) == 7 and data.chunk_size([1, 64]) == 1 and data.chunk_size([12]) == 6


def test_a_process_keeps_its_workers_from_one_configuration_to_the_next(small_image_set):
    """One feed per kind of work, started once (before the first configuration's baseline): a second source, at
    another batch size, takes chunks from the same workers; its batches are whole chunks."""
    before = _workers()
    feeds = data.Feeds(data.chunk_size([2, 4]))
    try:
        first = data.RealSource(data.SourceRequest("cpu", 8, 2, 2, str(small_image_set), feeds=feeds))
        workers = _workers() - before
        assert len(workers) == 2, "the process's workers start with its first real source, before its baseline"
        first.start()
        assert first.next().shape == (2, 3, 8, 8)
        first.close()
        assert _workers() - before == workers, "a configuration's end leaves the process's workers running"
        second = data.RealSource(data.SourceRequest("cpu", 8, 4, 2, str(small_image_set), feeds=feeds))
        second.start()
        batch = second.next()
        assert _workers() - before == workers, "the same workers serve the next batch size"
        assert batch.shape == (4, 3, 8, 8) and second.stats()["produce_ms_per_batch"]["median"] > 0
        second.close()
        with pytest.raises(ValueError, match="batch size 3 is not a whole number of 2-image chunks"):
            data.RealSource(data.SourceRequest("cpu", 8, 3, 2, str(small_image_set), feeds=feeds))
    finally:
        feeds.close()
    assert _workers() == before, "closed with the process's feeds"


class _Event:
    """torch.cuda.Event's part the ring uses: what stream it was recorded on, and when (a shared counter)."""
    clock = 0

    def __init__(self):
        self.recorded = []

    def record(self, stream):
        _Event.clock += 1
        self.recorded.append((stream, _Event.clock))


class _Stream:
    def __init__(self):
        self.waited = []

    def wait_event(self, event):
        self.waited.append((event, list(event.recorded)))


def test_the_gpu_decode_ring_writes_a_slot_again_only_after_the_model_queued_its_work_on_it():
    """The GPU-decode loader's batch buffers (data.sources.BatchRing, issue 32: its memory moved with timing): the
    decoder takes the slots in order and waits while every one is out; a slot comes back when the consumer takes the
    next batch, with an event on the consumer's stream, which the decoder's stream waits for before writing it."""
    import threading

    from fmtbench.data.sources import BatchRing
    ring, decoder, model, stop = BatchRing(3, _Event), _Stream(), "model stream", threading.Event()
    batch = torch.zeros(2, 3, 4, 4).contiguous(memory_format=torch.channels_last)
    slots = [ring.acquire(stop) for _ in range(3)]
    assert slots == [0, 1, 2]
    for slot in slots:
        ring.write(slot, batch + slot, decoder)
    assert ring.buffers[0].is_contiguous(memory_format=torch.channels_last), "the batch's layout kept"
    assert all(not recorded for _, recorded in decoder.waited), "fresh buffers: only events never recorded (no-ops)"
    decoder.waited.clear()

    got = []
    waiter = threading.Thread(target=lambda: got.append(ring.acquire(stop)))
    waiter.start()
    waiter.join(timeout=0.3)
    assert waiter.is_alive(), "every slot is out: the decoder waits"
    assert ring.hand_out(0, model)[0, 0, 0, 0] == 0
    waiter.join(timeout=0.3)
    assert waiter.is_alive(), "the consumer holds slot 0 until it takes the next batch"
    assert ring.hand_out(1, model)[0, 0, 0, 0] == 1
    waiter.join(timeout=2)
    assert got == [0], "slot 0 came back when batch 1 was taken"
    ring.write(0, batch + 3, decoder)
    (event, recorded), = decoder.waited
    assert recorded and recorded[-1][0] == model, "the decoder's stream waits for the event the model's stream recorded"
    assert ring.buffers[0][0, 0, 0, 0] == 3 and ring.hand_out(2, model)[0, 0, 0, 0] == 2


def test_a_stopped_gpu_decode_ring_lets_its_waiting_decoder_go():
    import threading

    from fmtbench.data.sources import BatchRing
    ring, stop = BatchRing(1, _Event), threading.Event()
    assert ring.acquire(stop) == 0
    got = []
    waiter = threading.Thread(target=lambda: got.append(ring.acquire(stop)))
    waiter.start()
    stop.set()
    waiter.join(timeout=2)
    assert not waiter.is_alive() and got == [None]


class _SideStream:
    """A decoder's stream whose wait for the model (an event recorded on the model's stream) takes 200 ms."""

    def __init__(self):
        self.waiting = False

    def synchronize(self):
        if self.waiting:
            time.sleep(0.2)
            self.waiting = False

    def wait_event(self, event):
        self.waiting = bool(event.recorded)


def _gpu_decode_stood_in(tmp_path, monkeypatch, images: int = 8):
    """A manifest of `images` files, and GpuDecodeSource's CUDA parts stood in for (streams, events, nvJPEG: each
    batch filled with its first image's number)."""
    from contextlib import nullcontext
    from pathlib import Path

    from fmtbench.data import sources
    paths = []
    for index in range(images):
        paths.append(tmp_path / f"img{index}.jpg")
        paths[-1].write_bytes(b"jpeg" * (index + 1))
    manifest = tmp_path / "manifest.json"
    write_json(manifest, {"images": [{"path": str(path), "nvjpeg": True} for path in paths]})
    monkeypatch.setattr(torch.cuda, "Stream", _SideStream)
    monkeypatch.setattr(torch.cuda, "Event", _Event)
    monkeypatch.setattr(torch.cuda, "stream", lambda stream: nullcontext())
    monkeypatch.setattr(torch.cuda, "current_stream", lambda: "model stream")
    monkeypatch.setattr(sources, "decode_on_gpu", lambda items, size, device, nvjpeg: torch.full(
        (len(items), 3, size, size), int(Path(items[0][0]).stem[3:]), dtype=torch.uint8))
    return manifest


def test_the_gpu_decode_pipeline_hands_out_its_ring_in_order_and_never_rewrites_the_batch_held(tmp_path, monkeypatch):
    """GpuDecodeSource's threads with the CUDA parts stood in for (streams, events, nvJPEG: each batch filled with
    its first image's number): the batches come in the feed's order, from the ring's QUEUE_DEPTH + 2 buffers only,
    the batch the consumer holds stays as it was while the decoder runs ahead, and the decode capacity is the
    decode's, not the wait for the model to give a slot back."""
    manifest = _gpu_decode_stood_in(tmp_path, monkeypatch)
    source = data.GpuDecodeSource(data.SourceRequest("cpu", 4, 2, 0, str(manifest)))
    source._normalise = lambda batch: batch.float()
    source.start()
    try:
        labels, buffers = [], set()
        for _ in range(12):
            batch = source.next()
            label = float(batch[0, 0, 0, 0])
            time.sleep(0.02)  # a slow model: the decoder fills the ring meanwhile
            assert float(batch[0, 0, 0, 0]) == label, "the held batch was written over"
            labels.append(label)
            buffers.add(batch.data_ptr())
        assert labels == [0, 2, 4, 6] * 3
        assert len(buffers) == source.QUEUE_DEPTH + 2
        stats = source.stats()
        assert stats["batches_timed"] == 12
        assert stats["produce_ms_per_batch"]["median"] < 100, "the decode is timed without the wait for a free slot"
    finally:
        source.close()
    assert source._threads == []


class _Numbers:
    """A dataset of image numbers, a chunk per call as the feeds' datasets make them."""

    def __init__(self, images: int):
        self.images = images

    def __len__(self) -> int:
        return self.images

    def __getitems__(self, indices):
        return list(indices), 0.0


@pytest.mark.parametrize("images, chunk", [(8, 2), (10, 4), (7, 3), (6, 6)])
def test_a_rewound_feed_goes_on_from_the_sets_first_image_whatever_was_taken(images, chunk):
    from fmtbench.data.feeds import Feed
    for taken in range(3 * images):
        feed = Feed(_Numbers(images), chunk, workers=0)
        feed.take(taken)
        dropped = feed.rewind()
        assert dropped < images // math.gcd(images, chunk)
        pieces, _ = feed.take(2)
        assert pieces[0][0] == 0, f"after {taken} chunks and {dropped} dropped"
        assert [i for piece in pieces for i in piece] == [i % images for i in range(2 * chunk)]


def test_each_gpu_decode_configuration_decodes_the_same_batches_whatever_the_one_before_took(tmp_path, monkeypatch):
    """Two configurations of a process share its feed of file bytes: the second, at another batch size, still
    starts at the set's first image, however far the first one's decoder ran ahead."""
    manifest = _gpu_decode_stood_in(tmp_path, monkeypatch, images=10)
    feeds = data.Feeds(2)
    try:
        for batch_size, batches in ((2, 3), (4, 5), (2, 1), (4, 5)):
            source = data.GpuDecodeSource(data.SourceRequest("cpu", 4, batch_size, 0, str(manifest), feeds=feeds))
            source._normalise = lambda batch: batch.float()
            source.start()
            try:
                labels = [float(source.next()[0, 0, 0, 0]) for _ in range(batches)]
            finally:
                source.close()
            assert labels == [float((i * batch_size) % 10) for i in range(batches)], batch_size
    finally:
        feeds.close()
