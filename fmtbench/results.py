"""The result JSON of one configuration (schema: schemas/result.schema.json)."""
from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

SCHEMA_PATH = Path(__file__).resolve().parent.parent / "schemas" / "result.schema.json"
SCHEMA_VERSION = 1
STATUSES = ("ok", "unavailable", "oom", "failed")


@dataclass(frozen=True)
class Config:
    format: str
    precision: str
    device: str
    loader: str
    image_size: int
    batch_size: int
    host: str


def record(config: Config, status: str, reason: str | None = None, *, timing=None, throughput=None,
           memory=None, accuracy=None, environment=None, artifact=None, backend=None) -> dict:
    if status not in STATUSES:
        raise ValueError(f"status {status!r} is not one of {STATUSES}")
    return {
        "schema_version": SCHEMA_VERSION,
        "config": asdict(config),
        "status": status,
        "reason": reason,
        "timing": timing,
        "throughput": throughput,
        "memory": memory,
        "accuracy": accuracy,
        "environment": environment or {},
        "artifact": artifact,
        "backend": backend or {},
    }


def validate(result: dict) -> None:
    import json
    import jsonschema
    jsonschema.validate(result, json.loads(SCHEMA_PATH.read_text()))
