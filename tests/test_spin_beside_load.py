"""tools/spin_beside_load.py (a developer's tool): a measuring process quiet and beside a CPU row's load."""
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tools"))
import spin_beside_load  # noqa: E402


def test_the_load_runs_beside_the_second_process_and_the_summary_pairs_them(tmp_path, capsys):
    """A smoke run on the CPU: each row measured quiet and beside the load, the load seen by the contention watch
    (others' share of the CPUs) only where it ran; the table pairs the two per row."""
    out = tmp_path / "spin.jsonl"
    spin_beside_load.main(["--out", str(out), "--rounds", "1", "--device", "cpu", "--size", "32", "--batches", "2"])
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert {(r["format"], r["load"]) for r in records} == {
        (name, load) for name, _ in spin_beside_load.ROWS for load in ("quiet", "cpu row")}
    for name, _ in spin_beside_load.ROWS:
        quiet, beside = ([r for r in records if r["format"] == name and r["load"] == load][0]
                         for load in ("quiet", "cpu row"))
        assert beside["others_share"] > max(quiet["others_share"], 0.1), (quiet, beside)
        assert quiet["gpu_ms"] is None, "no device time on the CPU"
    table = capsys.readouterr().out.splitlines()
    assert sum(line.startswith(f"| {name} |") for line in table for name, _ in spin_beside_load.ROWS) == 2
