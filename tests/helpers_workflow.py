"""Running the real workflow in the tests: Snakemake on a copy of the repository, its dry run's jobs, the tiny study
(a module's fixture `study`, through conftest) and its config with changes."""
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
HOST = "testhost"


def snakemake(repo, workdir, *args, env=None, check=True, target="report", cores="2", configfile=None):
    command = [sys.executable, "-m", "snakemake", "-s", str(repo / "Snakefile"), "-d", str(workdir), target,
               "--configfile", str(configfile or repo / "tests" / "data" / "tiny_config.yaml"),
               *(["--cores", cores] if cores else []), *args]
    completed = subprocess.run(command, capture_output=True, text=True, env={**os.environ, **(env or {})})
    if check and completed.returncode != 0:
        raise AssertionError(f"snakemake failed:\n{completed.stdout[-4000:]}\n{completed.stderr[-4000:]}")
    return completed


def planned_jobs(repo, workdir, env=None, configfile=None) -> set[tuple]:
    """(rule, wildcards...) of every job a dry run would run."""
    out = snakemake(repo, workdir, "-n", env=env, configfile=configfile)
    text = out.stdout + out.stderr
    jobs = set()
    for block in re.split(r"\n(?=(?:local)?rule \w+:)", text):
        header = re.match(r"(?:local)?rule (\w+):", block.strip())
        if not header:
            continue
        wildcards = re.search(r"wildcards: (.*)", block)
        pairs = tuple(sorted(wildcards.group(1).split(", "))) if wildcards else ()
        jobs.add((header.group(1), *pairs))
    return jobs


def benchmark(fmt, device, precision, size=None):
    """The job of a (format, device, precision): one for every image size (`size` names the one a test means)."""
    rule = "benchmark_cuda" if device == "cuda" else "benchmark"
    return (rule, f"device={device}", f"format={fmt}", f"host={HOST}", f"precision={precision}")


def export_job(fmt, precision, device, size, ext):
    return ("export", f"device={device}", f"ext={ext}", f"format={fmt}", f"precision={precision}", f"size={size}")


REPORT = ("report",)


def _generated(directory, names):
    """What a copy of the workflow leaves out: generated files, never package code."""
    everywhere = {n for n in names if n in {"__pycache__", ".pytest_cache"} or n.endswith(".egg-info")}
    top_level = {".git", ".venv", "artifacts", "report", ".snakemake"} if Path(directory) == REPO else set()
    return everywhere | (top_level & set(names))


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    """A copy of the workflow and a workdir in which the tiny study has run once."""
    root = tmp_path_factory.mktemp("study")
    repo = root / "repo"
    shutil.copytree(REPO, repo, ignore=_generated)
    workdir = root / "work"
    workdir.mkdir()
    started = time.perf_counter()
    out = snakemake(repo, workdir)
    print(f"tiny study: {time.perf_counter() - started:.1f} s")
    (workdir / "first-run.out").write_text(out.stdout + out.stderr)
    return repo, workdir


def result_paths(workdir):
    return sorted((workdir / "artifacts" / "results" / HOST).rglob("*.json"))


def tiny_config(path: Path, cpu_min_seconds: float | None = None, **changes) -> Path:
    """The tiny study's config with top-level `changes` (and CPU rows timed for at least `cpu_min_seconds`),
    written to `path`."""
    import yaml
    config = yaml.safe_load((REPO / "tests" / "data" / "tiny_config.yaml").read_text())
    config.update(changes)
    if cpu_min_seconds is not None:
        config["measurement"]["cpu"]["min_seconds"] = cpu_min_seconds
    path.write_text(yaml.safe_dump(config))
    return path

