"""What one image size of a benchmark job measures (`Request`): every batch size and loader of one (format, device,
precision), with everything a measuring process needs to load the model and write the rows.

The one place a request is made: `Request(...)` by keyword, the job's inputs and params in `for_job`."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from fmtbench import paths, results
from fmtbench.backends.base import LoadRequest
from fmtbench.settings import Settings


@dataclass(frozen=True, kw_only=True)
class Request:
    format: str                 # the row's name: a format, or a variant of one
    device: str
    precision: str
    image_size: int
    weights: str
    measurement: Settings
    backend: str = ""           # the module in fmtbench.backends that runs it (default: the format)
    host: str = "local"
    batch_sizes: tuple[int, ...] = (1,)
    loaders: tuple[str, ...] = ("dummy",)
    manifest: str | None = None
    reference: str | None = None
    artifact: str | None = None
    provenance: str | None = None
    loader_workers: int = 0
    threads: int | None = None
    options: dict = field(default_factory=dict)
    outputs: dict = field(default_factory=dict)  # (loader, batch_size) -> JSON path
    model_provenance: str | None = None          # where the weights came from: written into every row

    def __post_init__(self):
        if not self.backend:
            object.__setattr__(self, "backend", self.format)

    @property
    def configurations(self) -> list[tuple[str, int]]:
        """(loader, batch size) of every row, batch sizes ascending, loaders in the configured order."""
        return [(loader, batch) for batch in sorted(self.batch_sizes) for loader in self.loaders]

    def load_request(self) -> LoadRequest:
        return LoadRequest(precision=self.precision, device=self.device, image_size=self.image_size,
                           batch_sizes=tuple(sorted(self.batch_sizes)), state_dict=Path(self.weights),
                           artifact=Path(self.artifact) if self.artifact else None, options=self.options,
                           threads=self.threads)

    def config(self, loader: str, batch_size: int) -> results.Config:
        return results.Config(format=self.format, precision=self.precision, device=self.device, loader=loader,
                              image_size=self.image_size, batch_size=batch_size, host=self.host)

    def describe(self) -> str:
        return f"{self.format} {self.device} {self.precision} {self.image_size}×{self.image_size}"


def for_job(wildcards, params, inputs, outputs) -> list[Request]:
    """A benchmark job's requests, one per image size, from its wildcards, params, inputs and outputs."""
    measurement = Settings.from_json(params.measurement)
    requests = []
    for size in params.sizes:
        artifact = params.artifacts.get(size)
        requests.append(Request(
            format=wildcards.format, backend=params.backend, device=wildcards.device, precision=wildcards.precision,
            image_size=int(size), host=wildcards.host, batch_sizes=tuple(params.batch_sizes),
            loaders=tuple(params.loaders), weights=inputs.weights, manifest=inputs.manifest,
            reference=paths.REFERENCE.format(size=size), artifact=artifact,
            provenance=paths.provenance(artifact) if artifact else None,
            measurement=measurement, loader_workers=params.loader_workers,
            options=dict(params.options),
            outputs={paths.result_key(path): path for path in outputs if paths.result_size(path) == int(size)},
            model_provenance=inputs.model))
    return requests
