"""The result files a report reads, checked before it renders anything.

Another machine's files come as they come: written by another version of fmtbench, cut short, edited, or copied
into the wrong folder. Each file is validated against the schema of its `schema_version` (fmtbench.results), with
what the schema leaves open for a measured row (an `ok` row has its timing, throughput, memory and settings), and
the rows of one folder of `artifacts/results/` must come from one machine: its folder is the machine's label in
the report, and rows whose hardware differs (the CPU model of CPU rows, the GPU model of CUDA rows) are not one
machine's. A file that fails is refused naming it, and the report is not made: the previous one stays as it was.
"""
from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

from fmtbench import paths as layout
from fmtbench import results

SHOWN = 10  # refused files named one a line, then "and N more"
# What the schema leaves open and a report cannot do without: a measured row's figures, and the machine it describes
# in its Setup (the runner records all of them for every measured row).
OK = {"properties": {"status": {"const": "ok"}}, "required": ["status"]}
MEASURED = {"allOf": [
    {"if": OK, "then": {"properties": {
        **{name: {"type": "object"} for name in ("timing", "throughput", "memory", "measurement")},
        "environment": {"required": ["cpu_affinity", "cpu_physical_cores", "torch_threads"]}}}},
    {"if": {**OK, "properties": {**OK["properties"], "config": {"properties": {"device": {"const": "cuda"}}}}},
     "then": {"properties": {"environment": {"required": ["gpu_name", "driver", "cuda_runtime", "cudnn"]}}}},
]}


class RefusedInput(ValueError):
    """Result files the report will not read; the message names each, one a line."""


def schemas() -> dict[int, dict]:
    """The schema of each result version this fmtbench reads: the one it writes, and the earlier ones whose schema
    files it keeps (fmtbench.results)."""
    return {version: {**results.schema(version), **MEASURED} for version in results.readable_versions()}


def _where(error) -> str:
    where = ".".join(str(part) for part in error.absolute_path)
    return f"{where}: " if where else ""


def problem(record) -> str | None:
    """Why a parsed result file cannot be read by this version, or None."""
    from jsonschema.exceptions import best_match
    from jsonschema.validators import validator_for
    if not isinstance(record, dict):
        return f"holds a {type(record).__name__}, not a result record"
    version = record.get("schema_version")
    known = schemas()
    if version not in known:
        newest = max(known)
        if isinstance(version, int) and not isinstance(version, bool) and version > newest:
            return (f"written by a newer fmtbench (schema_version {version}; this one reads {newest}): update "
                    "fmtbench here, or delete the file to leave its row out")
        return f"schema_version {version!r} is not one this fmtbench reads ({', '.join(map(str, sorted(known)))})"
    schema = known[version]
    error = best_match(validator_for(schema)(schema).iter_errors(record))
    if error is None:
        return None
    message = " ".join(error.message.split())
    message = message if len(message) <= 200 else message[:199] + "…"
    return f"not a complete result (schema_version {version}): {_where(error)}{message}"


def folder(path) -> str | None:
    """The host folder a result file is filed under (artifacts/results/<host>/<format>/<device>-<precision>/
    <size>/<loader>-bs<batch>.json), or None for a file elsewhere."""
    parts = Path(path).parts
    return parts[-5] if len(parts) >= 6 and parts[-6] == Path(layout.RESULTS_DIR).name else None


def fingerprint(record: dict) -> tuple[str, str] | None:
    """The hardware a row was measured on, as fmtbench tells machines apart (hardware.device_fingerprint): the CPU
    model for CPU rows, the GPU model for CUDA rows that had one."""
    environment = record.get("environment") or {}
    if record["config"]["device"] == "cpu":
        return ("CPU", environment.get("cpu_model")) if environment.get("cpu_model") else None
    return ("GPU", environment["gpu_name"]) if environment.get("gpu_name") else None


def _one_machine_per_folder(records: dict[str, dict]) -> list[str]:
    """Rows of one folder measured on other hardware than most of its rows of that device, one line each."""
    lines = []
    groups: dict[tuple, dict[str, tuple]] = {}
    for path, record in records.items():
        if (print_ := fingerprint(record)) is not None:
            groups.setdefault((record["config"]["host"], print_[0]), {})[path] = print_[1]
    for (host, kind), machines in sorted(groups.items()):
        counts = Counter(machines.values())
        if len(counts) < 2:
            continue
        usual, count = counts.most_common(1)[0]
        for path, model in sorted(machines.items()):
            if model != usual:
                lines.append(f"{path}: filed under `{host}` but measured on {kind} {model!r}; its other {count} "
                             f"{kind} rows there on {usual!r}")
    return lines


def read(files) -> dict[str, dict]:
    """Every result file, parsed and checked, by path; each row's `config.host` is its folder (the label the report
    gives its machine). Raises RefusedInput naming every file that fails."""
    records, refused = {}, []
    for path in map(str, files):
        try:
            record = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, ValueError) as err:
            refused.append(f"{path}: not a readable result ({type(err).__name__}: {err})")
            continue
        why = problem(record)
        if why:
            refused.append(f"{path}: {why}")
            continue
        record["config"]["host"] = folder(path) or record["config"]["host"]
        records[path] = record
    refused += _one_machine_per_folder(records)
    if refused:
        shown = refused[:SHOWN] + ([f"... and {len(refused) - SHOWN} more"] if len(refused) > SHOWN else [])
        raise RefusedInput("\n".join([
            *shown, f"report: {len(refused)} result file(s) refused, the report is not made (the previous one stays "
                    "as it was): copy a damaged file again from its machine, update fmtbench for a newer one, move "
                    "another machine's files to a folder of their own under "
                    f"{layout.RESULTS_DIR}/ (the folder names the machine in the report), or delete them"]))
    return records
