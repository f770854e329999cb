"""DataLoader workers kept running: they make chunks of a few images (a divisor of every batch size of the
process) from one endless sampler, so one pool serves every batch size and never restarts or drains (`Feeds`:
one pool per kind of work, kept for a measuring process's life)."""
from __future__ import annotations

import math
import time
from collections.abc import Callable

from fmtbench.data.inputs import preprocess

PREFETCH_FACTOR = 2


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
    workers' seconds for each; `rewind()` drops chunks up to the set's first image."""

    def __init__(self, dataset, chunk: int, workers: int, pin_memory: bool = False):
        self._chunks = iter(_endless_loader(dataset, chunk, workers, pin_memory=pin_memory))
        self.images, self.chunk, self.taken = len(dataset), chunk, 0

    def take(self, count: int) -> tuple[list, list[float]]:
        pieces, seconds = [], []
        for _ in range(count):
            piece, spent = next(self._chunks)
            pieces.append(piece)
            seconds.append(spent)
            self.taken += 1
        return pieces, seconds

    def rewind(self) -> int:
        """Takes and drops chunks until the next one starts with the set's first image (chunks run on across the
        set's end, so at most images / gcd(images, chunk) - 1 of them); returns how many it dropped. A consumer
        that rewinds first gets the same batches whatever was taken before it: with a batch size that does not
        divide the set, which images share a batch otherwise depends on what the earlier configurations of the
        process took."""
        dropped = 0
        while (self.taken * self.chunk) % self.images:
            self.take(1)
            dropped += 1
        return dropped

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
