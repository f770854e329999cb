"""What else used the machine while a configuration was timed (fmtbench.measure.contention)."""
import json
import os
import subprocess
import sys
import time

import psutil
import pytest

from fmtbench.measure import contention

CORE = max(os.sched_getaffinity(0))
SECONDS = 1.5


def _spin(seconds: float | None, core: int = CORE, child: bool = False) -> subprocess.Popen:
    """A Python process busy on `core` for `seconds` (None: until killed); with `child`, it spins in a child
    process of its own instead (as a DataLoader worker would), itself idle."""
    loop = "while True: pass" if seconds is None else f"t = time.time()\nwhile time.time() - t < {seconds}: pass"
    body = f"import os, time\nos.sched_setaffinity(0, {{{core}}})\n{loop}\n"
    if child:
        body = (f"import subprocess, sys, os\nos.sched_setaffinity(0, {{{core}}})\n"
                f"subprocess.run([sys.executable, '-c', {body!r}])\n")
    return subprocess.Popen([sys.executable, "-c", body])


def _cpu(process: psutil.Process) -> float:
    """CPU seconds of a process and its live children."""
    total = 0.0
    for each in [process, *process.children(recursive=True)]:
        times = each.cpu_times()
        total += times.user + times.system
    return total


def _watched(hog: bool, work_in_child: bool = False) -> tuple[dict, float, float]:
    """A process busy on CORE, watched for SECONDS, with or without a hog pinned to the same core; the record, and
    the CPU seconds the hog and the watched process tree used meanwhile (as psutil counts them)."""
    hog_process = _spin(None) if hog else None
    work = _spin(SECONDS + 1.5, child=work_in_child)
    try:
        time.sleep(0.5)  # both running (and the child of a worker started)
        hog_info, work_info = psutil.Process(hog_process.pid) if hog else None, psutil.Process(work.pid)
        hog_before, work_before = _cpu(hog_info) if hog else 0.0, _cpu(work_info)
        watch = contention.Watch("cpu", [CORE], work.pid).start()
        time.sleep(SECONDS)
        record = watch.stop()
        return record, (_cpu(hog_info) - hog_before if hog else 0.0), _cpu(work_info) - work_before
    finally:
        work.kill()
        work.wait()
        if hog_process:
            hog_process.kill()
            hog_process.wait()


# The clock-tick resolution of the counters (and the few ms between psutil's reading and the watch's).
TOLERANCE_S = 0.06


def test_a_hog_on_our_core_marks_the_configuration_and_is_named(monkeypatch):
    """Robust on a shared machine: whatever else runs, the hog's time is counted as others', ours as ours, and more
    load only raises the share (the unmarked case is test_the_judgement_uses_the_thresholds...). The hog is found by
    its pid among every other process that used the CPU, not by its rank among the busiest (other work on a 2-core
    machine pushed it out of the TOP_OTHERS listed)."""
    monkeypatch.setattr(contention, "TOP_OTHERS", 10_000)
    spawned, spin = [], _spin
    monkeypatch.setattr(sys.modules[__name__], "_spin", lambda *args, **kwargs: spawned.append(
        spin(*args, **kwargs)) or spawned[-1])
    busy, hog_cpu, work_cpu = _watched(hog=True)
    hog_pid = spawned[0].pid  # _watched starts the hog first
    assert busy["contended"] is True and busy["cpu_contended"] is True, busy
    assert hog_cpu > 0.1 * SECONDS, "the hog ran"
    # (the study's own processes above this one, counted in proportion to their CPUs, can take a little of it)
    assert busy["others_busy_s"] + busy["study_cpu_s"] >= hog_cpu - TOLERANCE_S, (busy, hog_cpu)
    assert busy["own_cpu_s"] == pytest.approx(work_cpu, abs=TOLERANCE_S)
    assert busy["run_queue_wait_s"] > 0.05, "the watched process waited for its core"
    hog = [entry for entry in busy["busiest_others"] if entry["pid"] == hog_pid]
    assert hog and hog[0]["name"].startswith("python") and "while True" in (hog[0]["command"] or ""), busy
    assert hog[0]["cpu_s"] >= hog_cpu - TOLERANCE_S, (hog, hog_cpu)
    assert busy["cores"] == [CORE] and busy["seconds"] == pytest.approx(SECONDS, abs=0.3)
    assert "/proc/stat" in busy["method"]
    json.dumps(busy)  # JSON-able as it is


def test_our_own_children_are_ours_not_others():
    """The measuring process's DataLoader workers use its cores: that is the measurement, not contention."""
    record, _, work_cpu = _watched(hog=False, work_in_child=True)
    assert work_cpu > 0.1 * SECONDS, "the child ran"
    assert record["own_cpu_s"] == pytest.approx(work_cpu, abs=TOLERANCE_S), record
    assert record["others_busy_s"] <= record["cores_busy_s"] - work_cpu + TOLERANCE_S


def _fake_counters(monkeypatch, busy_ticks, steal_ticks, own_seconds, seconds=2.0):
    """/proc/stat, our process tree and the clock as given: the judgement alone, whatever the machine does."""
    readings = iter([{0: (0, 0, 0)}, {0: (busy_ticks, steal_ticks, 200)}])
    own = iter([{1: 0.0}, {1: own_seconds}])
    clock = iter([100.0, 100.0 + seconds])
    monkeypatch.setattr(contention.procinfo, "proc_stat", lambda: next(readings))
    monkeypatch.setattr(contention.procinfo, "own_seconds", lambda processes: next(own) if processes else {})
    monkeypatch.setattr(contention.procinfo, "others", lambda exclude: {})
    monkeypatch.setattr(contention, "_study", lambda ours: [])
    monkeypatch.setattr(contention, "_now", lambda: next(clock))
    monkeypatch.setattr(contention, "TICK_S", 0.01)
    return contention.Watch("cpu", [0], os.getpid()).start().stop()


def test_the_judgement_uses_the_thresholds_after_the_tick_resolution(monkeypatch):
    # 2 s on one core: 200 ticks. Ours 1.9 s of 1.95 s busy: others 2.5 %, quiet.
    assert _fake_counters(monkeypatch, 195, 0, 1.9)["contended"] is False
    # Others 0.6 s of 2 s = 30 %.
    record = _fake_counters(monkeypatch, 200, 0, 1.4)
    assert record["contended"] is True and record["others_share"] == pytest.approx(0.3)
    # Steal 10 % of the core, others nothing.
    assert _fake_counters(monkeypatch, 180, 20, 1.8)["contended"] is True
    # Just above the threshold but within the ticks' resolution (4 ticks here): not marked.
    record = _fake_counters(monkeypatch, 182, 0, 1.6)
    assert record["others_share"] == pytest.approx(0.11) and record["contended"] is False


def test_a_short_phase_is_not_marked_on_rounding_alone(monkeypatch):
    # 50 ms: one tick more on the core than ours reads as 20 % others, which the resolution says is nothing.
    record = _fake_counters(monkeypatch, 5, 0, 0.04, seconds=0.05)
    assert record["others_share"] == pytest.approx(0.2) and record["contended"] is False


def test_a_row_is_contended_if_any_of_its_processes_was():
    quiet = {"contended": False, "method": "m", "others_share": 0.01, "steal_share": 0.0, "loadavg_1min": 0.5,
             "busiest_others": []}
    busy = {**quiet, "contended": True, "others_share": 0.4,
            "busiest_others": [{"pid": 7, "name": "hog", "cpu_s": 1.0, "cpu_share": 0.5}]}
    summary = contention.row_summary([quiet, busy, quiet])
    assert summary["contended"] is True and summary["contended_processes"] == 1 and summary["processes"] == 3
    assert summary["others_share_max"] == 0.4 and summary["busiest_others"][0]["name"] == "hog"
    assert contention.row_summary([quiet, quiet])["contended"] is False
    assert contention.row_summary([None]) is None


def test_study_start_warning_names_a_busy_machine():
    cores = sorted(os.sched_getaffinity(0))
    hogs = [_spin(None, core) for core in cores]
    try:
        time.sleep(0.3)
        warning = contention.study_start_warning(cores)
    finally:
        for hog in hogs:
            hog.kill()
            hog.wait()
    assert warning is not None and "\n" not in warning
    assert warning.startswith("fmtbench: the machine is not quiet: other processes kept")
    assert "(busiest: " in warning and "of a CPU" in warning and "marked §" in warning


@pytest.mark.gpu
def test_a_cuda_watch_reports_other_processes_on_our_gpu():
    import torch
    torch.zeros(1, device="cuda")
    record = contention.Watch("cuda", None, os.getpid()).start().stop()
    others = [entry["pid"] for entry in record["gpu_others"]]
    assert os.getpid() not in others, "this process holds a CUDA context on the GPU: it is ours, not another's"
    busy = record["gpu_others_sm_pct_max"]
    assert record["gpu_contended"] == bool(others and (busy is None or busy > contention.GPU_OTHERS_SM_MAX))
    assert "NVML" in record["method"]


def test_no_share_is_negative_when_the_ticks_put_less_on_our_cores_than_we_used(monkeypatch):
    """218 rows of the H100 grid read a negative 'others' share: our tree's exact CPU time exceeded the ticks
    /proc/stat counted on our cores. Others used nothing then, not less than nothing."""
    record = _fake_counters(monkeypatch, 150, 0, 1.9)
    assert record["others_busy_s"] == 0 and record["others_share"] == 0 and record["contended"] is False


def test_heavy_work_elsewhere_on_the_machine_marks_a_cpu_row(monkeypatch):
    """ONNX Runtime CPU 224² batch 32 read 256 ms beside the exports compiling on other cores, 172 ms without: a CPU
    row shares memory bandwidth, caches and clock boost with the whole machine."""
    readings = iter([{0: (0, 0, 0)}, {0: (100, 0, 200)}])
    own = iter([{1: 0.0}, {1: 1.0}])
    clock = iter([100.0, 102.0])
    others = iter([{9: ("compiler", 0.0)}, {9: ("compiler", 0.5 * 2.0 * (os.cpu_count() or 1))}])
    monkeypatch.setattr(contention.procinfo, "proc_stat", lambda: next(readings))
    monkeypatch.setattr(contention.procinfo, "own_seconds", lambda processes: next(own) if processes else {})
    monkeypatch.setattr(contention.procinfo, "others", lambda exclude: next(others))
    monkeypatch.setattr(contention.procinfo, "busiest", lambda before, after, seconds: [])
    monkeypatch.setattr(contention, "_study", lambda ours: [])
    monkeypatch.setattr(contention, "_now", lambda: next(clock))
    record = contention.Watch("cpu", [0], os.getpid()).start().stop()
    assert record["cpu_contended"] is False and record["elsewhere_share"] == pytest.approx(0.5)
    assert record["elsewhere_contended"] is True and record["contended"] is True


def test_the_study_itself_is_neither_ours_nor_another_process():
    """The Snakemake process above a job is the study, not an 'other'; our own job process is ours."""
    record, _, _ = _watched(hog=False)
    above = {process.pid for process in psutil.Process().parents()} | {os.getpid()}
    assert not above & {entry["pid"] for entry in record["busiest_others"]}
    assert record["study_cpu_s"] >= 0 and record["others_busy_s"] >= 0
