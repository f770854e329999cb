"""The SLURM profile through a real scheduler: a single-node cluster on this machine (tests/slurm_cluster.py),
`snakemake --profile profiles/slurm report` on a tiny CPU study, compared with a local run of the same study."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import slurm_cluster
from helpers_workflow import REPO, tiny_config

pytestmark = pytest.mark.slurm
HOST = "slurmhost"
# The profile's resources are for a real cluster (16 cores per CPU job); this node has what this machine has.
NODE_RESOURCES = ["--default-resources", "slurm_partition=cpu", "cpus_per_task=1", "mem_mb=2000", "runtime=30",
                  "--set-resources", "benchmark:cpus_per_task=1", "benchmark:slurm_partition=cpu",
                  "--slurm-init-seconds-before-status-checks", "2"]


def _config(path: Path) -> Path:
    # CPU rows time for 2 s: long enough for an interrupt to land in a running job
    return tiny_config(path, cpu_min_seconds=2, host_label=HOST, image_sizes=[32], loaders=["dummy", "real"],
                       formats={"torch": {"cpu": ["fp32"]}, "onnx": {"cpu": ["fp32"]}})


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    reason = slurm_cluster.missing_requirements()
    if reason:
        pytest.skip(reason)
    started = slurm_cluster.start(tmp_path_factory.mktemp("slurm"))
    yield started
    started.stop()
    # torn down: every daemon this test started has exited (stopped by its process, nothing else touched)
    assert all(process.poll() is not None for process in started.processes.values())


def _snakemake(workdir: Path, config: Path, *args, env=None, slurm=True, popen=False):
    command = [sys.executable, "-m", "snakemake", "report", "-s", str(REPO / "Snakefile"), "-d", str(workdir),
               "--configfile", str(config), *args]
    command += ["--profile", str(REPO / "profiles" / "slurm"), *NODE_RESOURCES] if slurm else ["--cores", "2"]
    environment = {**os.environ, **(env or {})}
    if popen:
        return subprocess.Popen(command, env=environment, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                start_new_session=True,
                                preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    return subprocess.run(command, env=environment, capture_output=True, text=True)


def _results(workdir: Path) -> dict[str, dict]:
    root = workdir / "artifacts" / "results" / HOST
    return {str(p.relative_to(root)): json.loads(p.read_text()) for p in sorted(root.rglob("*.json"))}


def test_the_slurm_profile_runs_the_study_through_sbatch_like_a_local_run(cluster, tmp_path):
    config = _config(tmp_path / "config.yaml")
    local_dir, slurm_dir = tmp_path / "local", tmp_path / "slurm"
    started = time.perf_counter()
    local = _snakemake(local_dir, config, slurm=False)
    local_seconds = time.perf_counter() - started
    assert local.returncode == 0, local.stderr[-3000:]
    started = time.perf_counter()
    out = _snakemake(slurm_dir, config, env=cluster.env)
    slurm_seconds = time.perf_counter() - started
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-4000:]

    local_results, slurm_results = _results(local_dir), _results(slurm_dir)
    assert sorted(local_results) == sorted(slurm_results)
    assert {k: r["status"] for k, r in local_results.items()} == {k: r["status"] for k, r in slurm_results.items()}
    assert all(r["status"] == "ok" for r in slurm_results.values())
    local_report, slurm_report = ((d / "report" / "report.md").read_text() for d in (local_dir, slurm_dir))

    def rows(report):  # the format column of every table row: results (4) and exports (1)
        return sorted(line.split("|")[1].strip() for line in report.splitlines()
                      if line.startswith(("| torch", "| onnx")))
    assert rows(slurm_report) == rows(local_report) == ["onnx", "onnx", "onnx", "torch", "torch"]

    # Every job went through sbatch: sacct lists them, and each row says which SLURM job measured it on which CPUs.
    listing = cluster.run("sacct", "-X", "-n", "-P", "-o", "JobID,JobName,Partition,State,AllocCPUS").stdout
    print("sacct:\n" + listing)
    jobs = {line.split("|")[0]: line.split("|") for line in listing.splitlines() if line}
    assert len(jobs) >= 7 and all(fields[3] == "COMPLETED" for fields in jobs.values())
    for result in slurm_results.values():
        slurm = result["environment"]["slurm"]
        assert slurm and slurm["job_id"] in jobs and slurm["partition"] == "cpu"
        assert len(result["environment"]["cpu_affinity"]) == int(slurm["cpus_per_task"]) == 1
    n_jobs = len(jobs)
    print(f"local: {local_seconds:.1f} s, SLURM: {slurm_seconds:.1f} s for {n_jobs} jobs "
          f"(+{(slurm_seconds - local_seconds) / n_jobs:.1f} s per job)")

    again = _snakemake(slurm_dir, config, env=cluster.env)
    assert again.returncode == 0 and "Nothing to be done" in again.stdout + again.stderr


def test_an_interrupted_slurm_run_resumes_with_the_same_command(cluster, tmp_path):
    config = _config(tmp_path / "config.yaml")
    workdir = tmp_path / "work"
    process = _snakemake(workdir, config, env=cluster.env, popen=True)
    deadline = time.time() + 240
    submitted = workdir / ".snakemake" / "slurm_logs" / "rule_benchmark"
    while time.time() < deadline and not (list(submitted.rglob("*.log")) and "RUNNING" in cluster.run(
            "squeue", "-h", "-o", "%T").stdout):
        time.sleep(0.2)
    assert process.poll() is None, "the run ended before a benchmark job ran"
    os.killpg(process.pid, signal.SIGINT)   # Ctrl-C: Snakemake cancels its SLURM jobs and stops
    output, _ = process.communicate(timeout=180)
    assert process.returncode != 0, output[-3000:]
    deadline = time.time() + 60
    while time.time() < deadline and cluster.run("squeue", "-h").stdout.strip():
        time.sleep(0.5)
    assert not cluster.run("squeue", "-h").stdout.strip(), "the interrupted run's jobs were cancelled"

    resumed = _snakemake(workdir, config, env=cluster.env)
    assert resumed.returncode == 0, resumed.stdout[-2000:] + resumed.stderr[-4000:]
    assert all(r["status"] == "ok" for r in _results(workdir).values()) and len(_results(workdir)) == 4
    again = _snakemake(workdir, config, env=cluster.env)
    assert again.returncode == 0 and "Nothing to be done" in again.stdout + again.stderr
