"""tools/one_process.py (a developer's tool): would one process per CUDA model-alone row reproduce as the row does?"""
import sys
from pathlib import Path

import pytest
from fixtures import write_results

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tools"))
import one_process  # noqa: E402


def _sets(tmp_path):
    from fmtbench.atomic import read_json, write_json
    first, second = tmp_path / "a", tmp_path / "b"
    write_results(first, hosts=("gpu-box",))
    write_results(second, hosts=("gpu-box",))
    moved = next(path for path in sorted(second.rglob("dummy-*.json"))
                 if "cuda" in path.parts[-3] and read_json(path)["status"] == "ok")
    record = read_json(moved)
    record["timing"]["processes"][0]["gpu_ms"] *= 1.05  # B's first process of one row: 5 % more device time
    write_json(moved, record)
    return first, second, record["config"]


def test_the_first_process_of_each_row_is_compared_across_the_runs_and_within_one(tmp_path):
    first, second, config = _sets(tmp_path)
    rows_a, rows_b = one_process.model_alone_rows(first), one_process.model_alone_rows(second)
    assert rows_a and set(rows_a) == set(rows_b)
    assert all(key[0] == "gpu-box" for key in rows_a), "CUDA model-alone rows only"
    table = one_process.comparisons(rows_a, rows_b).set_index(["figure", "comparison"])
    one = table.loc[("device time per call", "one process a row (A's first against B's first)")]
    assert one["rows"] == len(rows_a) and one["within 2%"] == len(rows_a) - 1
    assert one["largest"] == pytest.approx(0.05)
    assert one["its row"] == " ".join(str(config[key]) for key in one_process.KEYS[1:])
    row = table.loc[("device time per call", "the row (every process), A against B")]
    assert row["largest"] < 0.05, "the row's device time is the median over its processes"
    host_bound = sum(entry["host_bound"] for entry in rows_a.values())
    wall = table.loc[("wall latency", "one process a row (A's first against B's first)")]
    assert 0 < host_bound < len(rows_a) and wall["rows"] == len(rows_a) - host_bound, "◊ rows: no wall figures"


def test_the_tool_writes_its_table(tmp_path, capsys):
    first, second, _ = _sets(tmp_path)
    out = tmp_path / "one-process.md"
    assert one_process.main([str(first), str(second), "--out", str(out)]) == 0
    text = out.read_text(encoding="utf-8")
    assert text.startswith("# One process per CUDA row") and "| device time per call" in text
    assert "## Real-loader rows" in text and "| one process a row" in text.split("## Real-loader rows")[1]
    assert text in capsys.readouterr().out


def test_real_loader_rows_are_judged_as_the_replicate_judges_end_to_end_from_one_process_or_the_row(tmp_path):
    from fmtbench.atomic import read_json, write_json
    first, second = tmp_path / "a", tmp_path / "b"
    write_results(first, hosts=("gpu-box",))
    write_results(second, hosts=("gpu-box",))
    moved = [path for path in sorted(second.rglob("real-*.json"))
             if "cuda" in path.parts[-3] and read_json(path)["status"] == "ok"][:2]
    faster, flipped = (read_json(path) for path in moved)
    faster["processes"][0]["loader"]["end_to_end_fps"] *= 1.12  # B's first process: 12 % more images end to end
    flipped["processes"][0]["loader"]["decode_capacity_fps"] *= 10  # ...: a decode faster than the model
    for path, record in zip(moved, (faster, flipped)):
        write_json(path, record)
    rows_a, rows_b = one_process.end_to_end_rows(first), one_process.end_to_end_rows(second)
    assert rows_a and set(rows_a) == set(rows_b) and all(key[-1] == "real" for key in rows_a)
    table = one_process.end_to_end_comparisons(rows_a, rows_b).set_index("comparison")
    one = table.loc["one process a row (A's first against B's first)"]
    rows = len(rows_a)
    assert one["rows"] == rows and one["verdict the same"] == rows - 1, "one process saw the model as the bound"
    assert one["loader-bound: e2e / capacity within 5%"] == f"{rows - 2} of {rows - 1}"
    assert one["loader-bound: largest"].startswith("12.00%")
    assert one["model-bound: e2e rate within 5%"] == "0 of 0"
    row = table.loc["the row (every process), A against B"]
    assert row["verdict the same"] == rows and row["loader-bound: e2e / capacity within 5%"] == f"{rows} of {rows}", \
        "the rows' figures are their JSONs' (the medians over the processes), which nothing moved"
    within = table.loc["within run A (its first process against its second)"]
    assert within["rows"] == rows and within["verdict the same"] == rows
