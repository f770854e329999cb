"""Ctrl-C reaches the whole process group: each process of a job ends calmly, without a traceback."""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from fmtbench import isolation, logs

REPO = Path(__file__).resolve().parent.parent

JOB = """
import os, signal, sys, time
from pathlib import Path
from fmtbench import logs
from fmtbench.atomic import atomic_path

def main():
    logs.setup([sys.argv[1]])
    with atomic_path(sys.argv[2]) as tmp:
        try:
            tmp.write_text("half")
            os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C while the output is being written
            time.sleep(5)
            tmp.write_text("whole")
        finally:
            os.kill(os.getpid(), signal.SIGINT)  # ... pressed again during the clean-up
            time.sleep(0.2)

logs.run(main, "rule demo")
"""


def test_a_job_interrupted_by_ctrl_c_says_so_in_one_line_and_exits_130(tmp_path):
    out = tmp_path / "out.txt"
    started = time.perf_counter()
    completed = subprocess.run([sys.executable, "-c", JOB, str(tmp_path / "job.log"), str(out)], cwd=REPO,
                               capture_output=True, text=True, timeout=60,
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    assert time.perf_counter() - started < 5, "the interrupt stopped the job"
    assert completed.returncode == logs.INTERRUPTED == 130
    lines = completed.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].endswith("WARNING fmtbench: rule demo interrupted (Ctrl-C): stopped, "
                                                 "nothing half-written left; the same command resumes"), lines
    assert "interrupted (Ctrl-C)" in (tmp_path / "job.log").read_text()
    assert not out.exists() and list(tmp_path.iterdir()) == [tmp_path / "job.log"], "no output, no temporary file"


def _interrupts_itself():
    os.kill(os.getpid(), signal.SIGINT)
    time.sleep(5)


def test_a_measuring_child_dies_of_ctrl_c_silently_and_its_death_is_transient(capfd):
    outcome = isolation.run_forked(_interrupts_itself, timeout=30)
    assert outcome.status == "failed" and "killed by SIGINT" in outcome.reason and outcome.transient
    captured = capfd.readouterr()
    assert "Traceback" not in captured.err and "KeyboardInterrupt" not in captured.err, captured.err
