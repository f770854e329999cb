"""tools/spin_beside_load.py (a developer's tool): a measuring process quiet and beside a CPU row's load."""
import json
import os
import subprocess
import sys
from pathlib import Path

TOOLS = Path(__file__).resolve().parent.parent / "tools"
sys.path.insert(0, str(TOOLS))
import spin_beside_load  # noqa: E402


def test_the_load_runs_beside_the_second_process_and_the_summary_pairs_them(tmp_path):
    """A smoke run on the CPU, in an interpreter of its own as the tool is run (it forks measuring processes, which
    a process whose torch already ran its thread pool must not): each row measured quiet and beside the load, the
    load seen by the contention watch (others' share of the CPUs) only where it ran; the table pairs the two."""
    out = tmp_path / "spin.jsonl"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TOOLS), *sys.path])}
    ran = subprocess.run([sys.executable, str(TOOLS / "spin_beside_load.py"), "--out", str(out), "--rounds", "1",
                          "--device", "cpu", "--size", "32", "--batches", "2"],
                         capture_output=True, text=True, env=env, timeout=600, check=False)
    assert ran.returncode == 0, ran.stderr[-2000:]
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert {(r["format"], r["load"]) for r in records} == {
        (name, load) for name, _ in spin_beside_load.ROWS for load in ("quiet", "cpu row")}
    for name, _ in spin_beside_load.ROWS:
        quiet, beside = ([r for r in records if r["format"] == name and r["load"] == load][0]
                         for load in ("quiet", "cpu row"))
        assert beside["others_share"] > max(quiet["others_share"], 0.1), (quiet, beside)
        assert quiet["gpu_ms"] is None, "no device time on the CPU"
    first_cells = [line.split("|")[1].strip() for line in ran.stdout.splitlines() if line.startswith("|")]
    assert sorted(cell for cell in first_cells if cell in {name for name, _ in spin_beside_load.ROWS}) == sorted(
        name for name, _ in spin_beside_load.ROWS), "one line per row of the table"
