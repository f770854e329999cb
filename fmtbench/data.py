"""Inputs: the loaders a configuration can use (one registry, `LOADERS`) and the batch sources behind them.

- `dummy`: one seeded random batch, made on the device in the format's final dtype and layout before the
  memory baseline.
- `real`: DataLoader workers decode, resize and centre-crop the image files (CPU); the measuring process
  normalises each batch on the device.
- `real_gpu_decode`: workers only read the files' bytes; a thread of the measuring process takes them from
  the workers, another decodes each batch in one batched nvJPEG call, resizes, crops and normalises on the
  GPU on a side stream, batches ahead of the model, so decoding batch n+1 overlaps the model on batch n.

A source is made before its configuration's memory baseline (a dummy batch: the input, not counted) and
started after it (`start`: workers, decoder threads and their queues are the loader's own memory, counted
in the configuration's figure: a real-loader row's figure is the model's plus its loader's).

The real loaders' workers make chunks of a few images (`chunk_size`: a divisor of every batch size of the
process), drawn from one endless sampler over the image set, and a batch is its chunks copied into one buffer
on the target device (or, for GPU decode, one batched nvJPEG call over its chunks' bytes). Chunks do not depend
on the batch size, so a measuring process keeps its workers running from one configuration to the next
(`Feeds`, one pool per kind of work, started before the first configuration's baseline): no configuration pays
for starting or stopping them, none sees their start-up burst, and they never drain at an epoch boundary. The
sources record how long each batch waited for data and how fast the workers (or the GPU decoder) produce
batches: their decode capacity.
"""
from __future__ import annotations

import math
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from fmtbench.atomic import read_json

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
PREFETCH_FACTOR = 2
# A real loader's timed phase: this many rounds of its workers, then it stops. Its figure is the end-to-end
# rate; waiting for the model time's interval to narrow under loader contention ran every such process to
# its time cap on the H100 (2.0 s per process instead of ~0.4 s).
ROUNDS_TIMED = 4


@dataclass(frozen=True)
class InputFormat:
    """The tensor a session's `prepare` takes without a copy: dtype name and memory layout."""
    dtype: str = "float32"          # "float16" | "float32"
    channels_last: bool = False


@dataclass(frozen=True)
class SourceRequest:
    device: str
    image_size: int
    batch_size: int
    workers: int
    manifest: str | None
    input_format: InputFormat = InputFormat()
    seed: int = 0
    feeds: Feeds | None = None  # the process's running workers; None: the source starts and stops its own


def _chunking(request: SourceRequest) -> int:
    chunk = request.feeds.chunk if request.feeds else chunk_size([request.batch_size])
    if request.batch_size % chunk:
        raise ValueError(f"batch size {request.batch_size} is not a whole number of {chunk}-image chunks")
    return chunk


@dataclass(frozen=True)
class Loader:
    name: str
    devices: tuple[str, ...]
    end_to_end: bool          # has an end-to-end figure (the dummy loader has none)
    description: str
    open: Callable[[SourceRequest], object]   # makes its batch source (not yet started)

    def min_timed_batches(self, workers: int) -> int:
        """Whole rounds of the workers: a timed phase shorter than a few rounds sees their start-up burst."""
        return ROUNDS_TIMED * max(workers, 1) if self.end_to_end else 0


def loader(name: str) -> Loader:
    if name not in LOADERS:
        raise ValueError(f"unknown loader {name!r}; known loaders: {', '.join(LOADERS)}")
    return LOADERS[name]


def loaders_for(names, device: str) -> list[str]:
    return [name for name in names if device in loader(name).devices]


# --- images ---------------------------------------------------------------------------------------------

def image_paths(manifest_path: str | Path) -> list[str]:
    return [entry["path"] for entry in read_json(manifest_path)["images"]]


def resize_short_side(size: int) -> int:
    """ImageNet evaluation practice: resize the short side to size * 256/224, then centre-crop `size`."""
    return int(math.floor(size * 256 / 224))


def preprocess(image, size: int):
    """uint8 (..., 3, H, W) -> uint8 (..., 3, size, size) on the image's device."""
    from torchvision.transforms.v2 import functional as F
    image = F.resize(image, resize_short_side(size), antialias=True)
    return F.center_crop(image, [size, size])


class Endless:
    """Indices 0..n-1, over and over: one sampler for the whole measurement, so no epoch ever ends."""

    def __init__(self, n: int):
        self.n = n

    def __iter__(self):
        while True:
            yield from range(self.n)


class ImageFiles:
    """Decoded, resized, centre-cropped uint8 images; `__getitems__` makes a whole batch in a worker and
    says how long it took (DataLoader calls it with the batch's indices)."""

    def __init__(self, paths: list[str], size: int):
        self.paths, self.size = list(paths), size

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int):
        from fmtbench.images import decode
        return preprocess(decode(self.paths[index]), self.size)

    def __getitems__(self, indices):
        import torch
        start = time.perf_counter()
        batch = torch.stack([self[i] for i in indices])
        return batch, time.perf_counter() - start


class FileBytes:
    """Undecoded file contents, a batch per call, with the seconds its reading took. Plain bytes, not
    tensors: a tensor per file would cross from the workers through a file descriptor each (12 workers
    exhausted them on the H100 host)."""

    def __init__(self, paths: list[str]):
        self.paths = list(paths)

    def __len__(self) -> int:
        return len(self.paths)

    def __getitems__(self, indices):
        start = time.perf_counter()
        items = []
        for i in indices:
            with open(self.paths[i], "rb") as handle:
                items.append((self.paths[i], handle.read()))
        return items, time.perf_counter() - start


def _as_is(batch):
    return batch


MAX_CHUNK = 8


def chunk_size(batch_sizes) -> int:
    """Images per worker task: the largest divisor of every batch size that is at most MAX_CHUNK (8 for the
    default 32..64 step 8), so every batch is whole chunks."""
    common = math.gcd(*(int(size) for size in batch_sizes))
    return max(size for size in range(1, min(common, MAX_CHUNK) + 1) if common % size == 0)


def _endless_loader(dataset, chunk: int, workers: int, pin_memory: bool = False):
    from torch.utils.data import BatchSampler, DataLoader
    return DataLoader(dataset, batch_sampler=BatchSampler(Endless(len(dataset)), chunk, drop_last=False),
                      num_workers=workers, collate_fn=_as_is, pin_memory=pin_memory,
                      prefetch_factor=PREFETCH_FACTOR if workers else None)


class Feed:
    """DataLoader workers making chunks of `chunk` images without end; `take(n)` returns the next n chunks and the
    workers' seconds for each."""

    def __init__(self, dataset, chunk: int, workers: int, pin_memory: bool = False):
        self._chunks = iter(_endless_loader(dataset, chunk, workers, pin_memory=pin_memory))

    def take(self, count: int) -> tuple[list, list[float]]:
        pieces, seconds = [], []
        for _ in range(count):
            piece, spent = next(self._chunks)
            pieces.append(piece)
            seconds.append(spent)
        return pieces, seconds

    def close(self) -> None:
        shutdown = getattr(self._chunks, "_shutdown_workers", None)
        if shutdown:
            shutdown()
        self._chunks = None


class Feeds:
    """A measuring process's feeds, one per kind of work (decoded images at one size, or file bytes), kept from
    one configuration to the next as a server keeps its input pipeline; closed when the process ends."""

    def __init__(self, chunk: int):
        self.chunk = chunk
        self._open: dict = {}

    def get(self, key, make: Callable[[], Feed]) -> Feed:
        if key not in self._open:
            self._open[key] = make()
        return self._open[key]

    def close(self) -> None:
        for feed in self._open.values():
            feed.close()
        self._open.clear()


def in_format(tensor, input_format: InputFormat, device: str | None = None):
    """`tensor` (float NCHW) in the format's input dtype and memory layout, on `device` if given."""
    import torch
    return tensor.to(device=device, dtype=getattr(torch, input_format.dtype),
                     memory_format=torch.channels_last if input_format.channels_last else torch.contiguous_format)


class Normaliser:
    """uint8 NCHW (any device) -> ImageNet-normalised tensor on `device` in the input format."""

    def __init__(self, device: str, input_format: InputFormat):
        import torch
        self.device, self.input_format = device, input_format
        self.scale = (1 / (255 * torch.tensor(IMAGENET_STD, device=device))).view(1, 3, 1, 1)
        self.shift = (torch.tensor(IMAGENET_MEAN, device=device) / torch.tensor(IMAGENET_STD, device=device)
                      ).view(1, 3, 1, 1)

    def __call__(self, batch_uint8):
        batch = batch_uint8.to(self.device, non_blocking=True).float().mul_(self.scale).sub_(self.shift)
        return in_format(batch, self.input_format)


def normalise(batch_uint8, device: str):
    """uint8 NCHW -> float32 NCHW on `device`, ImageNet-normalised."""
    return Normaliser(device, InputFormat())(batch_uint8)


# --- batch sources ------------------------------------------------------------------------------------

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


class GpuDecodeSource(_Fed):
    """Two threads of the measuring process, a pipeline: one takes each batch's bytes from the workers, the
    other decodes it (nvJPEG, one batched call), resizes, crops and normalises on a side stream. The decode
    capacity is what the slower of the two stages sustains: batch / max(mean fetch, mean decode seconds)."""
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
        self._fetched: queue.Queue = queue.Queue(maxsize=self.QUEUE_DEPTH)
        self._ready: queue.Queue = queue.Queue(maxsize=self.QUEUE_DEPTH)
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._fetch, daemon=True),
                         threading.Thread(target=self._decode, daemon=True)]
        for thread in self._threads:
            thread.start()

    def _fetch(self):
        try:
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
            try:
                start = time.perf_counter()
                with torch.cuda.stream(self._stream):
                    batch = self._normalise(decode_on_gpu(items, self.request.image_size, self.request.device,
                                                          self._nvjpeg))
                self._stream.synchronize()
                self._put(self._ready, (batch, time.perf_counter() - start, fetch_seconds))
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
        batch, seconds, fetch_seconds = self._ready.get()
        self.waits.append(time.perf_counter() - start)
        if isinstance(batch, Exception):
            raise batch
        self.produce_seconds.append(seconds)
        self.fetch_seconds.append(fetch_seconds)
        batch.record_stream(torch.cuda.current_stream())  # made on the side stream, used on this one
        return batch

    def close(self) -> None:
        if self._threads:
            self._stop.set()
            for pending in (self._ready, self._fetched):
                while not pending.empty():
                    pending.get_nowait()
            for thread in self._threads:
                thread.join(timeout=10)
            self._threads = []
        self._close_feed()


LOADERS = {loader.name: loader for loader in (
    Loader("real", ("cpu", "cuda"), True,
           "DataLoader workers decode, resize (short side to size·256/224) and centre-crop the image files on "
           "the CPU, a few images per task; a batch is its tasks' images copied into one buffer on the target "
           "device and normalised there", RealSource),
    Loader("dummy", ("cpu", "cuda"), False,
           "one seeded random batch, made on the device in the format's input dtype and layout", DummySource),
    Loader("real_gpu_decode", ("cuda",), True,
           "DataLoader workers read the files' bytes, a few files per task; a thread of the measuring process "
           "takes a batch's worth, another "
           "decodes each batch with nvJPEG in one call, then resizes, crops and normalises on the GPU on a side "
           "stream, batches ahead of the model", GpuDecodeSource),
)}


def dummy_batch(batch_size: int, size: int, device: str, seed: int = 0):
    """A float32 NCHW seeded random batch (tests, perf checks)."""
    return DummySource(SourceRequest(device, size, batch_size, 0, None, InputFormat(), seed)).batch


def fixed_batch(paths: list[str], size: int, count: int):
    """The first `count` images, normalised float32 on the CPU: the accuracy check's input."""
    import torch

    from fmtbench.images import decode
    chosen = [paths[i % len(paths)] for i in range(count)]
    return normalise(torch.stack([preprocess(decode(p), size) for p in chosen]), "cpu"), chosen
