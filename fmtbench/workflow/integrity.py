"""Before Snakemake plans a run: files a plain run must not trust, set aside so that it remakes them.

Snakemake reruns a job whose output is missing, and everything downstream of an input it remakes; it does
not look inside files. So a truncated export, a corrupt reference or result file, or a row whose measuring
process was killed would stay as they are. Each is checked here, cheaply (sizes, JSON parses, zip
directories; no hashing of large files: the benchmark job checks an export's sha256 before measuring), and
moved aside to `<name>.damaged` (kept for a post-mortem, never read again) or, for a transient failure, to
`<name>.previous` (read by the job that remeasures it, to count attempts). Another machine's results cannot be
remeasured here: a damaged one stops the run before any job, naming it. A dry run (`dry`) moves nothing: it is told
what a real run would set aside, and plans those files' jobs as remade (`invocation.force`).

Rows under another host label that this machine measured (same host name and CPU model: `this_machines`) are its
own earlier results, filed under the label it had then: not another machine.
"""
from __future__ import annotations

import json
import zipfile
from dataclasses import dataclass
from pathlib import Path

from fmtbench import paths
from fmtbench.workflow import hardware

DAMAGED = ".damaged"
PREVIOUS = ".previous"
# A row that failed transiently (its process killed, timed out, out of memory) is remeasured by the next plain
# runs until it has been tried this often; then it stays as it is (a size that never fits, a hang that repeats).
MAX_ATTEMPTS = 3


class DamagedInput(ValueError):
    """A file this machine cannot remake (another machine's result); the message names it and says what to do."""


@dataclass(frozen=True)
class SetAside:
    path: str
    why: str
    to: str


_parsed: dict[str, tuple[tuple[int, int], object]] = {}


def _read_json(path: Path):
    """The parsed file, or the error reading it; parsed once per version of the file (a full study has ~1000
    result files with every timing sample: repair and missing read them in the same invocation)."""
    try:
        stat = path.stat()
        stamp = (stat.st_mtime_ns, stat.st_size)
        cached = _parsed.get(str(path))
        if cached and cached[0] == stamp:
            return cached[1]
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as err:
        return err
    _parsed[str(path)] = (stamp, record)
    return record


def result_problem(path: Path) -> tuple[str, str] | None:
    """(suffix, why) when a result JSON must be remade: unreadable, or a transient failure to retry."""
    record = _read_json(path)
    if isinstance(record, Exception):
        return DAMAGED, f"not a readable result ({type(record).__name__}: {record})"
    if not isinstance(record, dict) or not {"config", "status"} <= set(record):
        return DAMAGED, "not a result record (no config or status)"
    if record.get("transient") and record.get("attempt", 1) < MAX_ATTEMPTS:
        return PREVIOUS, (f"{record['status']} in attempt {record.get('attempt', 1)} of {MAX_ATTEMPTS}, transiently "
                          f"({(record.get('reason') or '')[:160]}): remeasured")
    return None


def export_problem(artifact: Path) -> str | None:
    """Why an export recorded as good cannot be what its provenance says (size), or None."""
    provenance = _read_json(Path(paths.provenance(artifact)))
    if isinstance(provenance, FileNotFoundError) or not artifact.exists():
        return None  # missing: the report rule asks for both files, so Snakemake remakes them
    if isinstance(provenance, Exception) or not isinstance(provenance, dict):
        return f"its provenance is unreadable ({provenance})"
    size = provenance.get("size")
    if provenance.get("status") == "ok" and size is not None and artifact.is_file():
        actual = artifact.stat().st_size
        if actual != size:
            return f"{actual} bytes, the export wrote {size}"
    return None


def zip_problem(path: Path) -> str | None:
    """torch.save files are zip archives: a truncated or altered one fails its directory or a CRC."""
    if not path.exists():
        return None
    try:
        with zipfile.ZipFile(path) as archive:
            bad = archive.testzip()
    except (OSError, zipfile.BadZipFile) as err:
        return f"not a readable torch file ({err})"
    return f"member {bad} fails its CRC" if bad else None


def _move(path: Path, suffix: str, why: str, dry: bool = False) -> SetAside:
    target = Path(str(path) + suffix)
    if dry:
        return SetAside(str(path), why, str(target))
    if target.is_dir():
        import shutil
        shutil.rmtree(target)
    path.replace(target)
    return SetAside(str(path), why, str(target))


def set_aside_export(artifact: str | Path, why: str, dry: bool = False) -> SetAside:
    """An export and its provenance moved to `.damaged`: both missing, the export is made again."""
    provenance = Path(paths.provenance(artifact))
    moved = _move(Path(artifact), DAMAGED, why, dry)
    if provenance.exists():
        _move(provenance, DAMAGED, why, dry)
    return moved


def repair(results: list[list[str]], exports: list[str], references: dict[int, str],
           dry: bool = False) -> list[SetAside]:
    """Sets aside this machine's damaged or retryable files (results per job, exports, reference logits per
    image size); returns what it did (the Snakefile logs it), or with `dry`, what it would do."""
    done = []
    for path in (Path(p) for job in results for p in job):
        if path.exists() and (problem := result_problem(path)):
            done.append(_move(path, *problem, dry))
    for artifact in map(Path, exports):
        if why := export_problem(artifact):
            done.append(set_aside_export(artifact, why, dry))
    for path in map(Path, references.values()):
        if why := zip_problem(path):
            done.append(_move(path, DAMAGED, why, dry))
    return done


def check_foreign(results: list[str]) -> None:
    """Results copied from other machines: refuse a damaged one before any job runs (it cannot be remade here)."""
    for path in map(Path, results):
        problem = result_problem(path)
        if problem and problem[0] == DAMAGED:
            raise DamagedInput(f"{path}: {problem[1]}. It is another machine's result and cannot be remeasured "
                               "here: copy it again from that machine, or delete it to leave its row out.")


def previous_attempts(path: str | Path) -> int:
    """Attempts recorded in a result set aside for remeasuring (0 when there is none)."""
    previous = _read_json(Path(str(path) + PREVIOUS))
    return previous.get("attempt", 1) if isinstance(previous, dict) else 0


def missing(results: list[list[str]], exports: list[str], references: dict[int, str]) -> list[str]:
    """Files that rows measured here were made from, or were part of, and that are gone (deleted, or set aside):
    the export or reference logits an `ok` row used, or some of a job's result files while others remain.
    (Files no row has used yet, say of a new GPU's rows, are not missing: they are still to be made.)"""
    gone = []
    used = set()
    for job in results:
        present = [path for path in job if Path(path).exists()]
        if present and len(present) < len(job):
            gone += [path for path in job if path not in present]
        for path in present:
            record = _read_json(Path(path))
            if isinstance(record, dict) and record.get("status") == "ok":
                used.add(("artifact", (record.get("artifact") or {}).get("path")))
                used.add(("size", (record.get("config") or {}).get("image_size")))
    for artifact in exports:
        if ("artifact", artifact) in used:
            gone += [path for path in (artifact, paths.provenance(artifact)) if not Path(path).exists()]
    gone += [path for size, path in references.items() if ("size", size) in used and not Path(path).exists()]
    return gone


IMAGENET_HOST = "download.pytorch.org"  # where torchvision's ResNet-18 weights come from (fallbacks record the URL)


def reachable(host: str, timeout: float = 2.0) -> bool:
    import socket
    try:
        with socket.create_connection((host, 443), timeout=timeout):
            return True
    except OSError:
        return False


def weights_retry(provenance_path: str, weights_path: str, setting: str, can_reach=reachable,
                  dry: bool = False) -> SetAside | None:
    """A study that asked for ImageNet weights and fell back to a random init while offline: when the download
    host answers again, the weights are set aside, fetched anew, and everything made from them reruns."""
    provenance = _read_json(Path(provenance_path))
    if setting != "imagenet" or not isinstance(provenance, dict) or provenance.get("source") != "random-fallback":
        return None
    from urllib.parse import urlparse
    host = urlparse(provenance.get("url") or "").hostname or IMAGENET_HOST
    if not can_reach(host):
        return None
    why = f"a random init stands in for the ImageNet weights, and {host} answers now"
    if Path(weights_path).exists():
        _move(Path(weights_path), PREVIOUS, why, dry)
    return _move(Path(provenance_path), PREVIOUS, why, dry)


def this_machines(results: list[str]) -> dict[str, list[str]]:
    """The folders among other labels' results whose every readable row this machine measured (its host name and CPU
    model): label -> its files. A folder with a row of another machine, or none readable, is not among them."""
    import socket
    here = {"hostname": socket.gethostname(), "cpu_model": hardware.cpu_model()}
    folders: dict[str, list[str]] = {}
    for path in results:
        folders.setdefault(Path(path).relative_to(paths.RESULTS_DIR).parts[0], []).append(path)
    return {label: files for label, files in folders.items() if _measured_here(files, here)}


def _measured_here(files: list[str], here: dict) -> bool:
    """Whether every readable row of `files` names this machine, and one does (read up to the first that does not:
    another machine's folder costs one file)."""
    readable = 0
    for record in map(_read_json, map(Path, files)):
        if isinstance(record, dict):
            environment = record.get("environment") or {}
            if {key: environment.get(key) for key in here} != here:
                return False
            readable += 1
    return readable > 0


def measured_on(files: list[str]) -> str:
    """The dates the rows of `files` were measured on, as a span ("2026-12-01" or "2026-12-01 to 2026-12-06")."""
    dates = sorted({str((record.get("environment") or {}).get("measured_at") or "")[:10]
                    for record in map(_read_json, map(Path, files)) if isinstance(record, dict)} - {""})
    return " to ".join(dict.fromkeys([dates[0], dates[-1]])) if dates else "date unknown"
