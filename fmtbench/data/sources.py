"""The batch sources behind the loaders (data.LOADERS): a seeded dummy batch, CPU-decoding workers, and
workers feeding an nvJPEG decoder on the GPU. Each records how long its batches waited for data and how fast
its producers make them (their decode capacity)."""
from __future__ import annotations

import math
import queue
import threading
import time
from collections.abc import Callable
from pathlib import Path

from fmtbench.atomic import read_json
from fmtbench.data.feeds import PREFETCH_FACTOR, Feed, FileBytes, ImageFiles, chunk_size
from fmtbench.data.inputs import Normaliser, SourceRequest, in_format, preprocess


def _chunking(request: SourceRequest) -> int:
    chunk = request.feeds.chunk if request.feeds else chunk_size([request.batch_size])
    if request.batch_size % chunk:
        raise ValueError(f"batch size {request.batch_size} is not a whole number of {chunk}-image chunks")
    return chunk


class DummySource:
    def __init__(self, request: SourceRequest):
        import torch
        generator = torch.Generator().manual_seed(request.seed)
        batch = torch.randn(request.batch_size, 3, request.image_size, request.image_size, generator=generator)
        self.batch = in_format(batch, request.input_format, request.device)

    def start(self) -> None:
        pass

    def next(self):
        return self.batch

    def start_timing(self) -> None:
        pass

    def buffered_batches(self) -> int:
        return 0

    def stats(self) -> dict | None:
        return None

    def close(self) -> None:
        pass


def _ms_summary(seconds: list[float]) -> dict | None:
    import numpy as np
    if not seconds:
        return None
    values = np.asarray(seconds) * 1e3
    return {"median": float(np.median(values)), "mean": float(values.mean()),
            "p90": float(np.percentile(values, 90)), "max": float(values.max())}


class _Recording:
    """What both real sources record: per batch, the wait for data and the producer's seconds."""

    def _init_recording(self, request: SourceRequest, producers: int, producer: str, concurrent: bool):
        from fmtbench.images import distinct_per_batch
        self.request, self.producers, self.producer, self.concurrent = request, producers, producer, concurrent
        manifest = read_json(request.manifest)  # read once per source: its paths and counts
        self._paths = [entry["path"] for entry in manifest["images"]]
        # the loaders cycle through the set in order: a batch larger than the set repeats images
        self.distinct = distinct_per_batch(manifest.get("distinct_images", len(manifest["images"])),
                                           request.batch_size)
        self.waits: list[float] = []
        self.produce_seconds: list[float] = []
        self._timed_from = 0

    def start_timing(self) -> None:
        self._timed_from = len(self.waits)

    def stats(self) -> dict:
        import numpy as np
        waits = self.waits[self._timed_from:]
        produced = self.produce_seconds[self._timed_from:] or self.produce_seconds
        mean_seconds = float(np.mean(produced)) if produced else None
        capacity = (self.producers * self.request.batch_size / mean_seconds) if mean_seconds else None
        return {"data_wait_ms": _ms_summary(waits), "batches_timed": len(waits),
                "producer": self.producer, "producers": self.producers, "concurrent": self.concurrent,
                "produce_ms_per_batch": _ms_summary(produced),
                "decode_capacity_fps": capacity, "distinct_images_per_batch": self.distinct}


class _Fed(_Recording):
    """A source whose batches are chunks from a feed: the process's (kept running) or its own."""

    def _init_feed(self, make: Callable[[int], Feed], key) -> None:
        self._chunk = _chunking(self.request)
        self._per_batch = self.request.batch_size // self._chunk
        self._make, self._own = make, None
        # the process's feed is started before the configuration's baseline, and outlives it
        self._feed = self.request.feeds.get(key, lambda: make(self._chunk)) if self.request.feeds else None

    def buffered_batches(self) -> int:
        """Batches the workers hold ready when they are ahead: their prefetched chunks."""
        workers = self.request.workers
        return math.ceil(workers * PREFETCH_FACTOR / self._per_batch) if workers else 0

    def _start_feed(self) -> None:
        if self._feed is None:  # its own workers: started after the baseline, the configuration's
            self._own = self._feed = self._make(self._chunk)

    def _close_feed(self) -> None:
        if self._own is not None:
            self._own.close()
        self._own = self._feed = None


class RealSource(_Fed):
    def __init__(self, request: SourceRequest):
        self._init_recording(request, max(request.workers, 1),
                             f"{request.workers} DataLoader worker(s): decode + resize + crop, a few images per task"
                             if request.workers else "the measuring process: decode + resize + crop per batch",
                             concurrent=request.workers > 0)
        self._init_feed(lambda chunk: Feed(ImageFiles(self._paths, request.image_size), chunk, request.workers,
                                           pin_memory=request.device == "cuda"),
                        ("decoded", request.image_size))
        self._normalise = Normaliser(request.device, request.input_format)

    def start(self) -> None:
        self._start_feed()

    def next(self):
        import torch
        size, chunk = self.request.image_size, self._chunk
        start = time.perf_counter()
        pieces, seconds = self._feed.take(self._per_batch)
        self.waits.append(time.perf_counter() - start)
        self.produce_seconds.append(sum(seconds))
        staged = torch.empty((self.request.batch_size, 3, size, size), dtype=torch.uint8, device=self.request.device)
        for index, piece in enumerate(pieces):
            staged[index * chunk:(index + 1) * chunk].copy_(piece, non_blocking=True)
        return self._normalise(staged)

    def close(self) -> None:
        self._close_feed()


class ManifestError(ValueError):
    """A manifest written before a field that the loaders need: remade by the images rule, never guessed."""


def nvjpeg_paths(manifest_path: str | Path) -> frozenset[str]:
    """The images nvJPEG decodes as the CPU does (images.nvjpeg_decodable, recorded in the manifest). A manifest
    without the flags (written before them) is refused: decoding every image on the CPU under the GPU-decode
    loader's name would be a silent fallback."""
    entries = read_json(manifest_path)["images"]
    unflagged = [entry["path"] for entry in entries if "nvjpeg" not in entry]
    if unflagged:
        raise ManifestError(f"{manifest_path}: {len(unflagged)} of {len(entries)} images have no 'nvjpeg' flag "
                            f"(first: {unflagged[0]}); the manifest predates it: delete it and run the study "
                            "again to remake it")
    return frozenset(entry["path"] for entry in entries if entry["nvjpeg"])


def warm_gpu_decoder(device: str = "cuda") -> None:
    """nvJPEG's handle and buffers, made on first use and kept for the process (torchvision keeps its decoder):
    made before a measuring process's baseline, like the other libraries' handles, so that the first GPU-decode
    configuration of a process does not hold them in its figure while the next ones do not."""
    import torch

    from fmtbench.images import torchvision_io
    io = torchvision_io()
    encoded = io.encode_jpeg(torch.zeros(3, 16, 16, dtype=torch.uint8))
    io.decode_jpeg([encoded], mode=io.ImageReadMode.RGB, device=device)
    torch.cuda.synchronize()


def decode_on_gpu(items, size: int, device: str = "cuda", nvjpeg: frozenset[str] | None = None):
    """The images in `nvjpeg` (default: every .jpg/.jpeg) decoded by nvJPEG in one batched call, the others on
    the CPU (PNG, CMYK, EXIF-rotated, 16-bit: images.decode_bytes), then resized and centre-cropped on the
    GPU, one call per distinct image shape: uint8 NCHW on `device`, in the order of `items`."""
    import torch

    from fmtbench.images import decode_bytes, torchvision_io
    tensors = [(path, torch.frombuffer(bytearray(data), dtype=torch.uint8)) for path, data in items]
    on_gpu = [path in nvjpeg if nvjpeg is not None else path.lower().endswith((".jpg", ".jpeg"))
              for path, _ in tensors]
    jpegs = [data for (_, data), gpu in zip(tensors, on_gpu, strict=True) if gpu]
    io = torchvision_io()
    decoded = iter(io.decode_jpeg(jpegs, mode=io.ImageReadMode.RGB, device=device)) if jpegs else iter(())
    images = [next(decoded) if gpu else decode_bytes(data, path).to(device)
              for (path, data), gpu in zip(tensors, on_gpu, strict=True)]
    out = torch.empty(len(images), 3, size, size, dtype=torch.uint8, device=device)
    by_shape: dict[tuple, list[int]] = {}
    for index, image in enumerate(images):
        by_shape.setdefault(tuple(image.shape), []).append(index)
    for indices in by_shape.values():
        out[indices] = preprocess(torch.stack([images[i] for i in indices]), size)
    return out


class BatchRing:
    """A fixed number of batch buffers that a decode stage writes into and the model reads from, in turn, so what a
    GPU-decode loader holds is bounded and the same in every run. Before it, each decoded batch was a new tensor
    freed on the model's stream (`record_stream`): how many were alive, and when the allocator could reuse them,
    followed the timing, and a row's memory moved 5-10 % between two runs (H100, 2026-12-07).

    The decoder takes the slots in order (`acquire`: it waits while every slot is out), makes its stream wait for
    the model's work on the slot's last batch, and writes the batch into it (`write`); the consumer takes them in the
    same order (`hand_out`), and gives the one it held before back: an event recorded on its stream after the work
    it queued on that batch. `event` makes the events (torch.cuda.Event)."""

    def __init__(self, size: int, event: Callable[[], object]):
        self.size = size
        self.buffers: list | None = None
        self._events = [event() for _ in range(size)]
        self._free = threading.Semaphore(size)
        self._next = 0
        self._handed: int | None = None

    def acquire(self, stop: threading.Event) -> int | None:
        """The next slot to write, once the consumer has given it back; None when `stop` is set meanwhile."""
        while not self._free.acquire(timeout=0.1):
            if stop.is_set():
                return None
        slot, self._next = self._next, (self._next + 1) % self.size
        return slot

    def write(self, slot: int, batch, stream) -> None:
        """`batch` copied into `slot` on `stream`, after the model's work on the slot's last batch (the buffers are
        made like the first batch, on the decoder's stream)."""
        if self.buffers is None:
            import torch
            self.buffers = [torch.empty_like(batch) for _ in range(self.size)]  # its layout (channels_last) kept
        else:
            stream.wait_event(self._events[slot])
        self.buffers[slot].copy_(batch)

    def hand_out(self, slot: int, stream):
        """The consumer takes `slot`'s batch; the slot it held before goes back once `stream`'s work so far is done."""
        if self._handed is not None:
            self._events[self._handed].record(stream)
            self._free.release()
        self._handed = slot
        return self.buffers[slot]


class GpuDecodeSource(_Fed):
    """Two threads of the measuring process, a pipeline: one takes each batch's bytes from the workers, the
    other decodes it (nvJPEG, one batched call), resizes, crops and normalises on a side stream, into a ring of
    QUEUE_DEPTH + 2 batch buffers (BatchRing: the batches waiting, the one being written and the model's). The decode
    capacity is what the slower of the two stages sustains: batch / max(mean fetch, mean decode seconds), the decode
    timed without the wait for a free slot. A wait for data can then also be the ring's: where the model runs
    behind, a slot comes back only once the GPU has run the batch four before. Its batches start at the image set's
    first image (`Feed.rewind`), so a configuration decodes the same batches whatever ran before it."""
    QUEUE_DEPTH = 2

    def __init__(self, request: SourceRequest):
        self._init_recording(request, 1, "two threads of the measuring process: one takes the bytes from the "
                                         "workers, the other runs nvJPEG batch decode + resize + crop + normalise "
                                         "on a side CUDA stream", concurrent=True)
        self.fetch_seconds: list[float] = []
        self._nvjpeg = nvjpeg_paths(request.manifest)
        self._normalise = Normaliser(request.device, request.input_format)
        self._threads: list[threading.Thread] = []
        self._init_feed(lambda chunk: Feed(FileBytes(self._paths), chunk, request.workers), ("bytes",))

    def start(self) -> None:
        """Threads (and the source's own workers) start after the configuration's memory baseline: their queues and
        the decoded batches are the loader's."""
        import torch
        self._start_feed()
        self._stream = torch.cuda.Stream()
        self._ring = BatchRing(self.QUEUE_DEPTH + 2, torch.cuda.Event)
        self._fetched: queue.Queue = queue.Queue(maxsize=self.QUEUE_DEPTH)
        self._ready: queue.Queue = queue.Queue(maxsize=self.QUEUE_DEPTH)
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._fetch, daemon=True),
                         threading.Thread(target=self._decode, daemon=True)]
        for thread in self._threads:
            thread.start()

    def _fetch(self):
        try:
            # every configuration's batches from the set's first image on, whatever the process's earlier ones took:
            # nvJPEG's peak follows which images share a batch (tools/nvjpeg_memory.py)
            self._feed.rewind()
            while not self._stop.is_set():
                start = time.perf_counter()
                pieces, _ = self._feed.take(self._per_batch)
                self._put(self._fetched, ([item for piece in pieces for item in piece], time.perf_counter() - start))
        except Exception as err:  # noqa: BLE001 - handed to the consumer, which raises it
            self._put(self._fetched, (err, None))

    def _decode(self):
        import torch
        while not self._stop.is_set():
            try:
                items, fetch_seconds = self._fetched.get(timeout=0.1)
            except queue.Empty:
                continue
            if isinstance(items, Exception):
                self._put(self._ready, (items, None, None))
                return
            slot = self._ring.acquire(self._stop)
            if slot is None:
                return
            try:
                start = time.perf_counter()
                with torch.cuda.stream(self._stream):
                    batch = self._normalise(decode_on_gpu(items, self.request.image_size, self.request.device,
                                                          self._nvjpeg))
                self._stream.synchronize()
                seconds = time.perf_counter() - start  # the decode alone, not the wait for the slot below
                with torch.cuda.stream(self._stream):
                    self._ring.write(slot, batch, self._stream)
                    del batch  # its memory goes back to the decoder's stream at once: only the ring holds batches
                self._stream.synchronize()  # in its slot, after the model's work on the slot's last batch
                self._put(self._ready, (slot, seconds, fetch_seconds))
            except Exception as err:  # noqa: BLE001 - handed to the consumer, which raises it
                self._put(self._ready, (err, None, None))
                return

    def _put(self, target: queue.Queue, item):
        while not self._stop.is_set():
            try:
                target.put(item, timeout=0.1)
                return
            except queue.Full:
                continue

    def buffered_batches(self) -> int:
        """The workers' prefetched bytes, and the decoded and fetched batches in the two queues and threads."""
        return super().buffered_batches() + 2 * (self.QUEUE_DEPTH + 1)

    def stats(self) -> dict:
        import numpy as np
        stats = super().stats()
        fetched = self.fetch_seconds[self._timed_from:] or self.fetch_seconds
        decoded = self.produce_seconds[self._timed_from:] or self.produce_seconds
        stats["fetch_ms_per_batch"] = _ms_summary(fetched)
        if fetched and decoded:
            slower = max(float(np.mean(fetched)), float(np.mean(decoded)))
            stats["decode_capacity_fps"] = self.request.batch_size / slower
        return stats

    def next(self):
        import torch
        start = time.perf_counter()
        slot, seconds, fetch_seconds = self._ready.get()
        self.waits.append(time.perf_counter() - start)
        if isinstance(slot, Exception):
            raise slot
        self.produce_seconds.append(seconds)
        self.fetch_seconds.append(fetch_seconds)
        return self._ring.hand_out(slot, torch.cuda.current_stream())  # written and synchronised on the side stream

    def close(self) -> None:
        if self._threads:
            self._stop.set()
            for pending in (self._ready, self._fetched):
                while not pending.empty():
                    pending.get_nowait()
            for thread in self._threads:
                thread.join(timeout=10)
            self._threads = []
            self._ring = None  # the caller has synchronised: nothing reads the buffers any more
        self._close_feed()
