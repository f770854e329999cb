"""GPU claiming between concurrent jobs (separate processes, as Snakemake runs them)."""
import multiprocessing
import os
import time

import pytest

from fmtbench.workflow import gpus, hardware

CONTEXT = multiprocessing.get_context("fork")


def _job(lock_dir, report, release):
    with gpus.claim(lock_dir, poll_seconds=0.01) as device:
        report.put((device, os.environ.get("CUDA_VISIBLE_DEVICES"), time.monotonic()))
        release.wait(10)


@pytest.fixture
def two_gpus(monkeypatch, tmp_path):
    monkeypatch.setattr(hardware, "gpu_count", lambda: 2)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    return tmp_path / "locks"


def _start(lock_dir, report, release):
    process = CONTEXT.Process(target=_job, args=(lock_dir, report, release))
    process.start()
    return process


def test_concurrent_jobs_get_different_gpus_each_pinned_to_its_own(two_gpus):
    report, release = CONTEXT.Queue(), CONTEXT.Event()
    jobs = [_start(two_gpus, report, release) for _ in range(2)]
    claims = [report.get(timeout=10) for _ in jobs]
    assert {device for device, _, _ in claims} == {"0", "1"}
    assert all(device == visible for device, visible, _ in claims)
    release.set()
    for job in jobs:
        job.join(10)


def test_a_third_job_waits_for_a_free_gpu(two_gpus):
    report, release = CONTEXT.Queue(), CONTEXT.Event()
    holders = [_start(two_gpus, report, release) for _ in range(2)]
    [report.get(timeout=10) for _ in holders]
    second_release = CONTEXT.Event()
    waiter = _start(two_gpus, report, second_release)
    time.sleep(0.3)
    assert report.empty(), "a third job got a GPU while both were taken"
    released_at = time.monotonic()
    release.set()
    device, _, claimed_at = report.get(timeout=10)
    assert device in {"0", "1"} and claimed_at >= released_at
    second_release.set()
    for process in [*holders, waiter]:
        process.join(10)


def test_claims_among_the_devices_the_scheduler_made_visible(monkeypatch, tmp_path):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3,5")
    with gpus.claim(tmp_path) as device:
        assert device == "3" and os.environ["CUDA_VISIBLE_DEVICES"] == "3"
    assert os.environ["CUDA_VISIBLE_DEVICES"] == "3,5"


def test_no_gpu_no_claim(monkeypatch, tmp_path):
    monkeypatch.setattr(hardware, "gpu_count", lambda: 0)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    with gpus.claim(tmp_path) as device:
        assert device is None


def test_only_cuda_jobs_claim_a_gpu(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)  # the default lock directory is relative to the workdir
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3,5")
    with gpus.claim_for("cpu") as device:
        assert device is None and os.environ["CUDA_VISIBLE_DEVICES"] == "3,5"
    with gpus.claim_for("cuda") as device:
        assert device == "3" and os.environ["CUDA_VISIBLE_DEVICES"] == "3"
