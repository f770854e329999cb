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

from collections.abc import Callable
from dataclasses import dataclass

from fmtbench.data.feeds import Endless, Feed, Feeds, FileBytes, ImageFiles, chunk_size  # noqa: F401
from fmtbench.data.inputs import (  # noqa: F401
    IMAGENET_MEAN,
    IMAGENET_STD,
    InputFormat,
    Normaliser,
    Source,
    SourceRequest,
    image_paths,
    in_format,
    normalise,
    preprocess,
    resize_short_side,
)
from fmtbench.data.sources import (  # noqa: F401
    DummySource,
    GpuDecodeSource,
    ManifestError,
    RealSource,
    decode_on_gpu,
    nvjpeg_paths,
    warm_gpu_decoder,
)
from fmtbench.scope import Scope

# A real loader's timed phase: this many rounds of its workers, then it stops. Its figure is the end-to-end
# rate; waiting for the model time's interval to narrow under loader contention ran every such process to
# its time cap on the H100 (2.0 s per process instead of ~0.4 s).
ROUNDS_TIMED = 4


@dataclass(frozen=True)
class Loader:
    name: str
    devices: tuple[str, ...]
    scenario: Scope           # what its rows time, the model alone or end to end: the scenario they run
    description: str
    open: Callable[[SourceRequest], Source]   # makes its batch source (not yet started)

    @property
    def end_to_end(self) -> bool:
        """Has an end-to-end figure (the dummy loader has none)."""
        return self.scenario is Scope.END_TO_END

    def min_timed_batches(self, workers: int) -> int:
        """Whole rounds of the workers: a timed phase shorter than a few rounds sees their start-up burst."""
        return ROUNDS_TIMED * max(workers, 1) if self.end_to_end else 0


def loader(name: str) -> Loader:
    if name not in LOADERS:
        raise ValueError(f"unknown loader {name!r}; known loaders: {', '.join(LOADERS)}")
    return LOADERS[name]


def loaders_for(names, device: str) -> list[str]:
    return [name for name in names if device in loader(name).devices]


LOADERS = {loader.name: loader for loader in (
    Loader("real", ("cpu", "cuda"), Scope.END_TO_END,
           "DataLoader workers decode, resize (short side to size·256/224) and centre-crop the image files on "
           "the CPU, a few images per task; a batch is its tasks' images copied into one buffer on the target "
           "device and normalised there", RealSource),
    Loader("dummy", ("cpu", "cuda"), Scope.MODEL_ALONE,
           "one seeded random batch, made on the device in the format's input dtype and layout", DummySource),
    Loader("real_gpu_decode", ("cuda",), Scope.END_TO_END,
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
