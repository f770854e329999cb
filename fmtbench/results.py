"""The result of one configuration: one typed record (`Row`), written as one JSON file, read back by the report.

The JSON schema is derived from the record's field list (typedjson), the timing part from stats.Timing, the
other parts from readings. `SCHEMA_VERSION` changes when a field is added, removed or changes meaning; the
schemas of earlier versions that readers still accept are kept as files (`schemas/result.v<N>.schema.json`).
"""
from __future__ import annotations

import json
from dataclasses import dataclass, replace
from functools import cache
from pathlib import Path

from fmtbench import data, row_parts, settings, stats
from fmtbench.typedjson import doc, from_json, json_schema, to_json

SCHEMA_DIR = Path(__file__).resolve().parent.parent / "schemas"
SCHEMA_VERSION = 8
STATUSES = ("ok", "unavailable", "oom", "failed")
# e2e FPS below this share of min(model FPS, decode capacity) means the pipeline stalled.
PIPELINE_EFFICIENCY = 0.9
# e2e FPS above the decode capacity by more than this share is flagged: the producers did not make those images.
CAPACITY_MARGIN = 0.02


def pipeline_bound(model_fps: float | None, capacity_fps: float | None) -> str | None:
    """Which stage sets a real-loader row's end-to-end rate: `loader` where the decode capacity measured in the same
    processes is below the model's rate under load (the slower stage), else `model`; None without both. (A share of
    the capacity was tried first: on the H200, 2026-12-06, CPU-decode CUDA rows reached only 80-92 % of their
    capacity with a model 3-10x faster, and a 90 % share flipped 10 of 48 verdicts between two runs.)"""
    if not model_fps or not capacity_fps:
        return None
    return "loader" if capacity_fps < model_fps else "model"


@dataclass(frozen=True, kw_only=True)
class Config:
    format: str = doc("the row's name: a format, or a variant of one")
    precision: str = doc("fp16 or fp32", enum=["fp16", "fp32"])
    device: str = doc("cpu or cuda", enum=["cpu", "cuda"])
    loader: str = doc("the loader (data.LOADERS)")
    image_size: int = doc("pixels per side", minimum=1)
    batch_size: int = doc("images per call", minimum=1)
    host: str = doc("results directory tag: host_label or hardware model")


@dataclass(frozen=True, kw_only=True)
class Weights:
    source: str = doc("where the weights came from",
                      enum=["imagenet-cache", "imagenet-download", "file", "random", "random-fallback"])
    random: bool = doc("seeded random init: accuracy is numerical agreement only")
    description: str = doc("one line for reports")


@dataclass(frozen=True, kw_only=True)
class ExportRecord:
    path: str = doc("the export the row ran")
    sha256: str = doc("its hash at export time")


@dataclass(frozen=True, kw_only=True)
class Row:
    """One configuration's result: measured (`ok`) with its figures, or why not."""
    schema_version: int = doc("version of this record's schema", const=SCHEMA_VERSION)
    config: Config = doc("what was measured")
    weights: Weights | None = doc("where the model's weights came from", omitted=True)
    status: str = doc("ok, or why there is no measurement", enum=list(STATUSES))
    reason: str | None = doc("why the status is not ok")
    transient: bool = doc("a failure that may not repeat (a measuring process killed or timed out): the next plain "
                          "runs remeasure it (fmtbench.integrity); an out-of-memory row is not (it would not fit "
                          "next time)")
    attempt: int = doc("how many runs have measured this row (transient failures are retried)", minimum=1)
    timing: stats.Timing | None = doc("model time per batch over the row's processes")
    throughput: row_parts.ModelRates | row_parts.PipelineRates | None = doc("the row's rates")
    memory: row_parts.MemorySummary | None = doc("the configuration's memory")
    gpu: row_parts.GpuSummary | None = doc("NVML readings over the timed phases (CUDA rows where NVML answers)")
    accuracy: row_parts.Accuracy | None = doc("the row's logits against the reference")
    environment: dict = doc("the machine, libraries and time (env.capture)")
    artifact: ExportRecord | None = doc("the export the row ran, hashed")
    backend: dict = doc("settings in effect (threads, providers, memory format, ...)")
    processes: list[row_parts.ProcessEntry] = doc("every measuring process of the row, in the order they ran")
    measurement: settings.Settings | None = doc("the settings the row was measured with (null where not measured)")
    contention: row_parts.ContentionSummary | None = doc("what else used the machine while the row was timed")

    def to_json(self) -> dict:
        return to_json(self)

    @classmethod
    def from_json(cls, value: dict) -> Row:
        return from_json(cls, value)

    @property
    def ok(self) -> bool:
        return self.status == "ok"


def failure(config: Config, status: str, reason: str, *, environment: dict, transient: bool = False,
            artifact: ExportRecord | None = None, backend: dict | None = None) -> Row:
    """A row without a measurement: why not."""
    if status not in STATUSES or status == "ok":
        raise ValueError(f"status {status!r} is not one of {STATUSES[1:]}")
    return Row(schema_version=SCHEMA_VERSION, config=config, status=status, reason=reason, transient=transient,
               attempt=1, timing=None, throughput=None, memory=None, gpu=None, accuracy=None,
               environment=environment, artifact=artifact, backend=backend or {}, processes=[], measurement=None,
               contention=None)


def with_attempt(row: Row, attempt: int, weights: Weights | None) -> Row:
    return replace(row, attempt=attempt, weights=weights or row.weights)


@cache
def schema(version: int = SCHEMA_VERSION) -> dict:
    """The result schema of `version`: the current one derived from the record, earlier ones from their files."""
    if version != SCHEMA_VERSION:
        return json.loads((SCHEMA_DIR / f"result.v{version}.schema.json").read_text())
    document = json_schema(Row)
    document["properties"]["config"]["properties"]["loader"] = {"enum": list(data.LOADERS),
                                                                "description": "the loader"}
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", "title": "fmtbench result", **document}


def readable_versions() -> list[int]:
    """Schema versions this code reads: the current one and those whose schema files are kept."""
    kept = sorted(int(path.name.split(".")[1][1:]) for path in SCHEMA_DIR.glob("result.v*.schema.json"))
    return sorted({*kept, SCHEMA_VERSION})


def validate(result: dict) -> None:
    """Raises jsonschema.ValidationError where `result` is not a row of its schema version."""
    import jsonschema
    version = result.get("schema_version") if isinstance(result, dict) else None
    jsonschema.validate(result, schema(version if version in readable_versions() else SCHEMA_VERSION))


SCHEMA_FILE = SCHEMA_DIR / "result.schema.json"

if __name__ == "__main__":
    # The schema for readers (derived from the record; a test keeps the file in step).
    SCHEMA_FILE.write_text(json.dumps(schema(), indent=2) + "\n")
