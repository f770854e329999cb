"""The profiles parse, and CUDA jobs ask for one GPU each (what --resources gpu=N schedules on)."""
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parent.parent
TINY = REPO / "tests" / "data" / "tiny_config.yaml"


def dry_run(tmp_path, *args):
    command = [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "-d", str(tmp_path), "report",
               "--configfile", str(TINY), "-n", *args]
    out = subprocess.run(command, capture_output=True, text=True)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    return out.stdout + out.stderr


def job_resources(text):
    jobs = {}
    for block in re.split(r"\n(?=(?:local)?rule \w+:)", text):
        rule = re.match(r"(?:local)?rule (\w+):", block.strip())
        wildcards = re.search(r"wildcards: (.*)", block)
        resources = re.search(r"resources: (.*)", block)
        if rule and wildcards:
            jobs[(rule.group(1), wildcards.group(1))] = resources.group(1) if resources else ""
    return jobs


def test_default_profile_resumes_interrupted_runs():
    profile = yaml.safe_load((REPO / "profiles" / "default" / "profile.yaml").read_text())
    assert profile["rerun-incomplete"] is True


def test_multi_gpu_resources_one_gpu_per_cuda_job(tmp_path):
    jobs = job_resources(dry_run(tmp_path, "--profile", str(REPO / "profiles" / "multi-gpu"), "--resources", "gpu=4"))
    cuda = {key: res for key, res in jobs.items() if "device=cuda" in key[1] and key[0] == "benchmark_cuda"}
    cpu = {key: res for key, res in jobs.items() if key[0] == "benchmark"}
    assert cuda and all("gpu=1" in res for res in cuda.values())
    assert cpu and not any("gpu=1" in res for res in cpu.values())


def test_slurm_profile_parses_and_requests_gpus(tmp_path):
    pytest.importorskip("snakemake_executor_plugin_slurm",
                        reason='the SLURM executor plugin is not installed (pip install -e ".[slurm]")')
    jobs = job_resources(dry_run(tmp_path, "--profile", str(REPO / "profiles" / "slurm")))
    cuda = [res for key, res in jobs.items() if key[0] == "benchmark_cuda"]
    assert cuda and all("gpu=1" in res and "slurm_partition=gpu" in res for res in cuda)
    assert all("slurm_partition=cpu" in res for key, res in jobs.items() if key[0] == "benchmark")


def test_one_cpu_job_at_a_time_in_every_profile_of_one_host(tmp_path):
    """A CPU job runs beside the CUDA jobs on cores of its own (host_turns): the profiles allow one at a time, so a
    second CPU job's imports and preparation never run on its cores."""
    for name in ("default", "multi-gpu"):
        profile = yaml.safe_load((REPO / "profiles" / name / "profile.yaml").read_text())
        assert "cpu_rows=1" in profile["resources"], name
    jobs = job_resources(dry_run(tmp_path, "--cores", "2"))
    cpu = {key: res for key, res in jobs.items() if key[0] == "benchmark"}
    cuda = {key: res for key, res in jobs.items() if key[0] == "benchmark_cuda"}
    assert cpu and all("cpu_rows=1" in res for res in cpu.values())
    assert all("cpu_rows=1" not in res for res in cuda.values())
