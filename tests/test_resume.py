"""Whatever a user does, the next plain command finishes: Snakemake killed in the report job or in its own
bookkeeping, a dry run, a relabelled machine, a config file of one's own, a checkout under a path with a space."""
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
import yaml

pytestmark = pytest.mark.workflow
REPO = Path(__file__).resolve().parent.parent
HOST = "testhost"
ROW = Path("artifacts/results") / HOST / "torch/cpu-fp32/32/dummy-bs2.json"


def _command(workdir, config, *args, python=sys.executable):
    return [python, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "-d", str(workdir), "--configfile",
            str(config), *args]


def _run(workdir, config, *args, check=True, **kwargs):
    out = subprocess.run(_command(workdir, config, *args, **kwargs), capture_output=True, text=True)
    if check and out.returncode != 0:
        raise AssertionError(f"snakemake failed:\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}")
    return out


def _plain(workdir, config, **kwargs):
    """The README's command to rerun with (no flag)."""
    return _run(workdir, config, "--cores", "1", "report", **kwargs)


def _minimal_config(path: Path, **changes) -> Path:
    """The tiny study cut to one row kind: torch on the CPU, 32², the dummy loader (every job short)."""
    config = yaml.safe_load((REPO / "tests" / "data" / "tiny_config.yaml").read_text())
    config.update(formats={"torch": {"cpu": ["fp32"]}}, image_sizes=[32], loaders=["dummy"], **changes)
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.fixture(scope="module")
def minimal(tmp_path_factory):
    """A workdir in which the minimal study has run once, and its config."""
    root = tmp_path_factory.mktemp("resume")
    config = _minimal_config(root / "config.yaml")
    workdir = root / "work"
    _plain(workdir, config)
    return workdir, config


def _files(workdir: Path) -> dict:
    """Every file and folder of a workspace with its size and time, and the files of Snakemake's own records of what
    it ran, locked and kept (its iocache and the code-hash cache are caches, rewritten by any run; Snakemake makes
    its folders on every start)."""
    kept = {"locks", "metadata", "incomplete", "backups"}
    state = {}
    for path in sorted(workdir.rglob("*")):
        parts = path.relative_to(workdir).parts
        if parts[0] == ".snakemake" and (len(parts) < 3 or parts[1] not in kept or path.is_dir()):
            continue
        stat = path.lstat()
        state[str(path.relative_to(workdir))] = (stat.st_size, stat.st_mtime_ns, path.is_dir())
    return state


def test_a_dry_run_changes_nothing_on_disk_and_still_plans_what_the_plain_command_remakes(minimal):
    """A transiently failed row on disk: `snakemake -n` used to rename its JSON to `.previous` and delete
    report/.complete. It lists the job that remeasures it and the report, and leaves every file as it was."""
    workdir, config = minimal
    row = workdir / ROW
    good = json.loads(row.read_text())
    row.write_text(json.dumps({**good, "status": "failed", "transient": True, "attempt": 1, "timing": None,
                               "reason": "the measuring process died (SIGKILL) during stage 'timing_start'"}))
    before = _files(workdir)
    try:
        out = _run(workdir, config, "-n", "report")
        assert _files(workdir) == before, "a dry run changed the workspace"
        console = out.stdout + out.stderr
        assert "a run sets it aside as" in console and "(not this dry run)" in console, console[-3000:]
        assert "rule benchmark:" in console and "rule report:" in console, console[-3000:]
        _plain(workdir, config)
        assert json.loads(row.read_text())["attempt"] == 2 and (workdir / "report" / ".complete").exists()
        assert "Nothing to be done" in _run(workdir, config, "-n", "report").stdout
    finally:
        if not row.exists():  # set aside by the dry run: the other tests start from a whole workspace
            row.write_text(json.dumps(good))


def test_rows_of_this_machine_under_its_previous_label_are_its_earlier_results_not_another_machine(minimal):
    """Relabelled (host_label), a machine's rows under its old label were reported as a second machine and compared
    with itself. They are left out, in one line naming the folder, its label and date; copied rows of another
    machine (another host name) are still reported beside this one's."""
    workdir, config = minimal
    results = workdir / "artifacts" / "results"
    shutil.copytree(results / HOST, results / "oldlabel")
    other = results / "other-box" / ROW.relative_to(Path("artifacts/results") / HOST)
    other.parent.mkdir(parents=True)
    record = json.loads((workdir / ROW).read_text())
    record["environment"]["hostname"] = "another-host"
    other.write_text(json.dumps({**record, "config": {**record["config"], "host": "other-box"}}))
    try:
        out = _plain(workdir, config)
        console = out.stdout + out.stderr
        today = json.loads((workdir / ROW).read_text())["environment"]["measured_at"][:10]
        assert (f"fmtbench: artifacts/results/oldlabel/: 1 result(s) this machine measured under host_label "
                f"'oldlabel' ({today}), before this run's label '{HOST}': its earlier results, not another machine: "
                "left out of the report") in console, console[-3000:]
        report = (workdir / "report" / "report.md").read_text()
        assert "oldlabel" not in report and "## Results on `other-box`" in report and "## Across machines" in report
    finally:
        shutil.rmtree(results / "oldlabel")
        shutil.rmtree(results / "other-box")
    _plain(workdir, config)


def _start(workdir, config) -> subprocess.Popen:
    console = (workdir / "console.txt").open("a")
    return subprocess.Popen(_command(workdir, config, "--cores", "1", "report"), stdout=console,
                            stderr=subprocess.STDOUT, start_new_session=True)


def _wait_for(condition, timeout=300.0):
    deadline = time.time() + timeout
    while not condition():
        assert time.time() < deadline, "the moment to kill at did not come"
        time.sleep(0.01)


def _running_script(snakemake: subprocess.Popen, name: str) -> bool:
    try:
        return any(name in part for p in psutil.Process(snakemake.pid).children(recursive=True)
                   for part in p.cmdline())
    except psutil.NoSuchProcess:
        return False


def _report_rerun(workdir: Path) -> None:
    """The report is to be made again (as after a new result): its completion mark gone."""
    (workdir / "report" / ".complete").unlink(missing_ok=True)


def test_snakemake_killed_in_the_report_job_then_the_plain_command_finishes(minimal):
    """kill -9 once the report job runs: Snakemake leaves its backup of the previous report (.snakemake/backups),
    on which every later run stopped (FileExistsError: .snakemake/backups/report/plots). The plain command puts it
    back, as Snakemake would have for a failed job, and makes the report."""
    workdir, config = minimal
    report = workdir / "report" / "report.md"
    previous = report.read_text()
    _report_rerun(workdir)
    snakemake = _start(workdir, config)
    _wait_for(lambda: _running_script(snakemake, "report") or snakemake.poll() is not None)
    backup = workdir / ".snakemake" / "backups" / "report" / "plots"
    _wait_for(lambda: backup.is_dir() or snakemake.poll() is not None)  # inside the job, its backup made (not a sleep)
    snakemake.kill()
    snakemake.wait()
    assert (workdir / ".snakemake" / "backups" / "report" / "plots").is_dir(), "the kill came too late"
    assert report.read_text() == previous
    out = _plain(workdir, config)
    console = out.stdout + out.stderr
    assert "restored from the backup a killed Snakemake left" in console and "removed the lock" in console, console
    assert "Traceback" not in console and (workdir / "report" / ".complete").exists()
    assert not [p for p in (workdir / ".snakemake" / "backups").rglob("*") if not p.is_dir()], "no backup left"
    assert "Nothing to be done" in _run(workdir, config, "-n", "report").stdout


def _holders(workdir: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in (workdir / ".snakemake" / "locks").glob("fmtbench-holder-*.json")]


def test_snakemake_killed_in_its_own_bookkeeping_then_the_plain_command_finishes(minimal):
    """kill -9 after Snakemake locked the directory and before its `onstart` (it is building its plan): the lock's
    holder was not yet recorded, and every later run stopped ("Directory cannot be locked ... --unlock")."""
    workdir, config = minimal
    locks = workdir / ".snakemake" / "locks"
    for _ in range(10):  # the moment is a few tens of ms: stopped at it, or tried again
        _report_rerun(workdir)
        snakemake = _start(workdir, config)
        _wait_for(lambda run=snakemake: list(locks.glob("*.lock")) or run.poll() is not None)
        os.kill(snakemake.pid, signal.SIGSTOP)
        caught = list(locks.glob("*.lock")) and not any(holder["locks"] for holder in _holders(workdir))
        snakemake.kill()
        snakemake.wait()
        if caught:
            break
        _plain(workdir, config)
    assert caught, "Snakemake was never stopped between locking and onstart"
    out = _plain(workdir, config)
    console = out.stdout + out.stderr
    assert "removed the lock left by Snakemake process" in console and "--unlock" not in console, console[-3000:]
    assert (workdir / "report" / ".complete").exists()


def test_a_config_file_of_ones_own_replaces_config_yaml(tmp_path):
    """In a checkout (config.yaml in the working directory), `--configfile tiny.yaml` planned config.yaml's CUDA formats
    and CPU batch sizes (32, 64) that tiny.yaml never named; config.yaml first merges, as README says."""
    workdir = tmp_path / "checkout"
    workdir.mkdir()
    shutil.copy(REPO / "config.yaml", workdir / "config.yaml")
    mine = _minimal_config(tmp_path / "tiny.yaml")
    out = _run(workdir, mine, "-n", "report")
    console = out.stdout + out.stderr
    assert "bs32" not in console and "inductor" not in console and "cuda" not in console, console[-3000:]
    assert f"artifacts/results/{HOST}/torch/cpu-fp32/32/dummy-bs2.json" in console
    assert "config.yaml is not read (a --configfile replaces it" in console
    out = subprocess.run([sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "-n", "report",
                          "--configfile", "config.yaml", str(mine)], cwd=workdir, capture_output=True, text=True)
    assert out.returncode == 0 and "cpu-fp32/32/dummy-bs32.json" in out.stdout, out.stderr[-3000:]
    assert "config.yaml is not read" not in out.stdout + out.stderr


def test_a_python_under_a_path_with_a_space_is_refused_in_one_line_before_any_job(tmp_path):
    """A checkout (and its .venv) under a path with a space: every job failed with exit status 126 (Snakemake starts
    `script:` jobs with the interpreter's path unquoted). Refused in one line saying why and what to do."""
    venv = tmp_path / "my studies" / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    site = next((venv / "lib").glob("python3*/site-packages"))
    ours = next(Path(path) for path in sys.path if path.endswith("site-packages") and Path(path).is_dir())
    (site / "ours.pth").write_text(f"import site; site.addsitedir({str(ours)!r})\n")
    workdir = tmp_path / "work"
    out = _plain(workdir, _minimal_config(tmp_path / "config.yaml"), check=False, python=str(venv / "bin" / "python"))
    lines = [line for line in out.stderr.splitlines() if "fmtbench: the Python that runs this study" in line]
    assert out.returncode != 0 and len(lines) == 1, out.stderr[-3000:]
    assert str(venv) in lines[0] and "Clone or move the checkout to a path without one" in lines[0]
    assert "Traceback" not in out.stderr and not (workdir / "artifacts").exists(), out.stderr[-3000:]
