"""A job's processes end with the process that started it (fmtbench.lifeline), and the lock a killed Snakemake
leaves is recognised as stale (fmtbench.workflow.locks)."""
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from fmtbench import lifeline
from fmtbench.workflow import locks

REPO = Path(__file__).resolve().parent.parent
TESTS = str(Path(__file__).resolve().parent)

# A job as Snakemake runs one: started by a process (here a stand-in for Snakemake) that is then killed with SIGKILL.
JOB = """
import sys
from fmtbench import isolation, lifeline, logs
import helpers_isolated

def main():
    logs.setup([])
    if sys.argv[1] == "forked":
        isolation.run_forked(helpers_isolated.says_its_pid_and_sleeps, sys.argv[2], timeout=300)
    else:
        isolation.run_interpreter("helpers_isolated:writes_slowly", sys.argv[2], env={"PYTHONPATH": sys.argv[3]})

lifeline.hold()
logs.run(main, "rule demo")
"""
STARTER = """
import subprocess, sys, time
subprocess.Popen([sys.executable, "-c", sys.argv[1], *sys.argv[2:]])
time.sleep(600)
"""


def _wait_for(condition, timeout=60.0, what="it"):
    deadline = time.time() + timeout
    while not condition():
        assert time.time() < deadline, f"{what} did not happen within {timeout:.0f} s"
        time.sleep(0.05)


def _started_and_killed(tmp_path, kind: str, ready) -> tuple[list[psutil.Process], str]:
    """The job under a stand-in for Snakemake; once `ready()`, the stand-in is killed (SIGKILL). Returns the job's
    processes as they were just before."""
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), TESTS]), "TMPDIR": str(scratch)}
    env.pop(lifeline.OWNER, None)
    starter = subprocess.Popen([sys.executable, "-c", STARTER, JOB, kind, str(tmp_path / "out.txt"), TESTS],
                               env=env, stderr=subprocess.PIPE, text=True)
    try:
        _wait_for(ready, what="the job's child starting")
        processes = psutil.Process(starter.pid).children(recursive=True)
        assert len(processes) >= 2, processes  # the job and its child
        starter.kill()
    finally:
        starter.kill()
        _, stderr = starter.communicate(timeout=60)
    return processes, stderr


def test_a_measuring_child_dies_with_its_job_when_the_jobs_parent_is_killed(tmp_path):
    pid_file = tmp_path / "out.txt"
    processes, _ = _started_and_killed(tmp_path, "forked", ready=lambda: pid_file.exists() and pid_file.read_text())
    gone, alive = psutil.wait_procs(processes, timeout=lifeline.GRACE_S + 10)
    assert not alive, f"outlived the process that started them: {alive}"
    assert int(pid_file.read_text()) in {p.pid for p in gone}


def test_an_export_child_unwinds_with_its_job_leaving_no_part_file_and_nothing_in_tmp(tmp_path):
    """The job gets SIGTERM (not SIGKILL) when its parent dies: it stops its interpreter child, which removes its
    half-written `.part` file, and the files that carried its request and result have no name anywhere."""
    processes, stderr = _started_and_killed(tmp_path, "interpreter",
                                            ready=lambda: list(tmp_path.glob(".out.*.part.txt")))
    gone, alive = psutil.wait_procs(processes, timeout=lifeline.GRACE_S + 10)
    assert not alive, f"outlived the process that started them: {alive}"
    assert not list(tmp_path.glob("*.part*")) and not (tmp_path / "out.txt").exists(), list(tmp_path.iterdir())
    assert list((tmp_path / "tmp").iterdir()) == [], "nothing left in the temporary directory"
    assert "WARNING fmtbench: stopped (SIGTERM): nothing half-written left; the same command resumes" in stderr
    assert "Traceback" not in stderr, stderr


def test_a_job_whose_snakemake_is_already_gone_stops_at_once():
    """The race: Snakemake killed between starting the job and the job asking for the signal."""
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    code = ("import os, time\nfrom fmtbench import lifeline\nlifeline.hold()\nprint('ran on')\n")
    for owner, ran_on in [(f"{os.uname().nodename} {dead.pid} 12.5", False),
                          (f"{os.uname().nodename} {os.getpid()} {lifeline.start_time(os.getpid())}", True),
                          (f"another-host {dead.pid} 12.5", True)]:
        completed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO,
                                   env={**os.environ, lifeline.OWNER: owner}, timeout=60)
        assert ("ran on" in completed.stdout) == ran_on, (owner, completed)
        assert completed.returncode == (0 if ran_on else lifeline.STOPPED), completed.stderr


def _holder(locks_dir: Path, pid: int, started, **changes) -> None:
    record = {"host": os.uname().nodename, "boot": locks._boot(), "pid": pid, "started": started,
              "locks": {name: entry.stat().st_mtime_ns for name, entry in
                        ((p.name, p) for p in locks_dir.glob("*.lock"))}, **changes}
    (locks_dir / locks.HOLDER.format(pid=pid)).write_text(json.dumps(record))


def test_the_lock_of_a_killed_snakemake_is_removed_saying_so_and_no_other(tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    started = lifeline.start_time(dead.pid)
    dead.wait()
    cases = {
        "killed": (dead.pid, started, {}, True),
        "rebooted": (os.getpid(), lifeline.start_time(os.getpid()), {"boot": "another-boot"}, True),
        "alive": (os.getpid(), lifeline.start_time(os.getpid()), {}, False),
        "another host": (dead.pid, started, {"host": "another-host"}, False),
        "pid reused": (os.getpid(), 12.5, {}, True),
    }
    for name, (pid, start, changes, removed) in cases.items():
        directory = tmp_path / name.replace(" ", "-")
        directory.mkdir()
        for lock in ("0.input.lock", "0.output.lock"):
            (directory / lock).write_text("artifacts/results/x.json\n")
        _holder(directory, pid, start, **changes)
        (directory / "1.output.lock").write_text("written after the holder said what it held\n")
        line = locks.release_stale(directory)
        left = sorted(p.name for p in directory.glob("*.lock"))
        if removed:
            assert left == ["1.output.lock"], (name, left)
            assert line.startswith(f"fmtbench: {directory}: removed the lock left by Snakemake process {pid} "), line
            assert not list(directory.glob("fmtbench-holder-*")), name
        else:
            assert line is None and left == ["0.input.lock", "0.output.lock", "1.output.lock"], (name, left)


def test_a_lock_no_one_claimed_is_the_gone_process_that_was_about_to_lock(tmp_path):
    """Killed after Snakemake locked and before `onstart` claimed: the lock is the gone process's that said, while its
    Snakefile was parsed, that it would lock; not an older lock, nor one a live process may yet claim."""
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    older = time.time() - 60
    for name, pid, removed in [("killed", dead.pid, True), ("alive", os.getpid(), False)]:
        directory = tmp_path / name
        directory.mkdir()
        (directory / "0.input.lock").write_text("older than the record\n")
        os.utime(directory / "0.input.lock", (older, older))
        record = {"host": os.uname().nodename, "boot": locks._boot(), "pid": pid, "locks": {},
                  "started": lifeline.start_time(pid) if pid == os.getpid() else 12.5,
                  "since": time.time_ns() - locks.CLOCK_SLACK_NS}
        (directory / locks.HOLDER.format(pid=pid)).write_text(json.dumps(record))
        (directory / "0.output.lock").write_text("written after\n")
        line = locks.release_stale(directory)
        left = sorted(p.name for p in directory.glob("*.lock"))
        assert left == (["0.input.lock"] if removed else ["0.input.lock", "0.output.lock"]), (name, left)
        assert (line is not None) == removed and (not removed or f"Snakemake process {pid} " in line), line


def test_snakemake_holding_the_lock_records_it_and_a_second_run_leaves_it():
    """`claim` in the Snakemake that holds the lock: a run started meanwhile finds the holder alive."""
    import tempfile
    with tempfile.TemporaryDirectory() as directory:
        (Path(directory) / "0.output.lock").write_text("x\n")
        locks.claim(directory)
        assert json.loads((Path(directory) / f"fmtbench-holder-{os.getpid()}.json").read_text())["locks"]
        assert locks.release_stale(directory) is None and (Path(directory) / "0.output.lock").exists()


SIGTERMED = """
import os, signal, sys, time
from fmtbench import lifeline, logs
from fmtbench.atomic import atomic_path

def main():
    logs.setup([])
    with atomic_path(sys.argv[1]) as tmp:
        tmp.write_text("half")
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(30)

lifeline.hold()
logs.run(main, "rule demo")
"""


def test_sigterm_from_anyone_unwinds_a_held_job(tmp_path):
    """A scheduler's SIGTERM (scancel) unwinds the job as Ctrl-C does: its temporary file goes, one line says so."""
    started = time.perf_counter()
    completed = subprocess.run([sys.executable, "-c", SIGTERMED, str(tmp_path / "out.txt")], capture_output=True,
                               text=True, cwd=REPO, timeout=60)
    assert time.perf_counter() - started < 20 and completed.returncode == lifeline.STOPPED, completed.stderr
    assert list(tmp_path.iterdir()) == [] and "Traceback" not in completed.stderr, completed.stderr
    assert completed.stderr.strip().endswith("WARNING fmtbench: stopped (SIGTERM): nothing half-written left; the "
                                             "same command resumes"), completed.stderr


LIBRARIES_TMP = ("snakemake", "torchinductor_", ".ses")


def _study(workdir: Path, config: Path, env: dict) -> subprocess.Popen:
    """The README's study command (its Snakemake part), in the background, its console to a file."""
    console = (workdir / "console.txt").open("a")
    return subprocess.Popen([sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "-d", str(workdir),
                             "--configfile", str(config), "--cores", "1", "report"], cwd=REPO, env=env,
                            stdout=console, stderr=subprocess.STDOUT, start_new_session=True)


def _kill_snakemake_when(snakemake: subprocess.Popen, ready) -> list[psutil.Process]:
    """Waits for `ready(jobs)` (jobs: Snakemake's descendants), checks that each job's parent is Snakemake itself
    (what fmtbench.lifeline relies on: bash execs the script's interpreter), kills Snakemake with SIGKILL;
    returns the processes that were running under it."""
    def descendants():
        try:
            return psutil.Process(snakemake.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            return []
    _wait_for(lambda: snakemake.poll() is None and ready(descendants()), timeout=600, what="the point to kill at")
    processes = descendants()
    scripts = [p for p in processes if any(".snakemake/scripts/" in part for part in p.cmdline())]
    jobs = [p for p in scripts if p.ppid() not in {s.pid for s in scripts}]  # not a job's forked child
    assert jobs and all(job.ppid() == snakemake.pid for job in jobs), [(j.cmdline(), j.ppid()) for j in jobs]
    snakemake.kill()
    snakemake.wait()
    return processes


def _command(process) -> str:
    """A process's command line; empty for one that ended (or is a zombie) while the test looked."""
    try:
        return " ".join(process.cmdline())
    except psutil.Error:
        return ""


def _running(name: str):
    return lambda processes: any(name in _command(p) for p in processes)


@pytest.mark.workflow
def test_snakemake_killed_mid_export_and_mid_measurement_leaves_nothing_and_the_plain_command_resumes(tmp_path):
    import yaml
    config = yaml.safe_load((REPO / "tests" / "data" / "tiny_config.yaml").read_text())
    config.update(formats={"torch": {"cpu": ["fp32"]}, "onnx": {"cpu": ["fp32"]}}, image_sizes=[32], loaders=["dummy"])
    config["measurement"]["cpu"]["min_seconds"] = 20  # a measurement long enough to be killed in
    config_path = tmp_path / "config.yaml"
    config_path.write_text(yaml.safe_dump(config))
    workdir, scratch = tmp_path / "work", tmp_path / "tmp"
    workdir.mkdir()
    scratch.mkdir()
    env = {**os.environ, "TMPDIR": str(scratch)}
    benchmark_log = workdir / "artifacts" / "logs" / "benchmark" / "testhost" / "onnx-cpu-fp32.log"
    for name, ready in [("mid-export", _running("fmtbench.isolation")),  # the export's interpreter is exporting
                        ("mid-measurement", lambda processes: benchmark_log.exists()
                         and "measuring" in benchmark_log.read_text() and len(processes) >= 2)]:
        processes = _kill_snakemake_when(_study(workdir, config_path, env), ready)
        gone, alive = psutil.wait_procs(processes, timeout=lifeline.GRACE_S + 10)
        assert not alive, f"{name}: outlived Snakemake: {[p.cmdline() for p in alive]}"
        assert not list((workdir / "artifacts").rglob("*.part*")), name
        # What a completed run leaves there too: Snakemake's own directory (its to clean: "snakemake…"), torch's
        # compile cache and ONNX Runtime's session file. Nothing of fmtbench's (its scratch was "tmp…").
        assert [p.name for p in scratch.iterdir() if not p.name.startswith(LIBRARIES_TMP)] == [], name
        assert list((workdir / ".snakemake" / "locks").glob("*.lock")), "the killed Snakemake left its lock"
    resumed = _study(workdir, config_path, env)
    assert resumed.wait(timeout=900) == 0, (workdir / "console.txt").read_text()[-3000:]
    console = (workdir / "console.txt").read_text()
    assert "removed the lock left by Snakemake process" in console and "--unlock" not in console, console[-3000:]
    assert "LockException" not in console
    result = json.loads((workdir / "artifacts/results/testhost/onnx/cpu-fp32/32/dummy-bs2.json").read_text())
    assert result["status"] == "ok", result["reason"]
    again = subprocess.run([sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "-d", str(workdir),
                            "--configfile", str(config_path), "-n", "report"], cwd=REPO, capture_output=True,
                           text=True)
    assert "Nothing to be done" in again.stdout + again.stderr
