"""tools/process_spread.py (a developer's tool): a model-alone process's device time by what shared the host."""
import sys
from pathlib import Path

import pytest
from fixtures import write_results

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tools"))
import process_spread  # noqa: E402

BAR = {"thresholds": {"others_share": 0.10}}  # as the contention watch writes its own bar into each record


def _runs(tmp_path):
    """Two runs whose CUDA model-alone processes all had a watch: quiet, except B's first process of one row,
    which ran beside other work and read 5 % more device time."""
    from fmtbench.atomic import read_json, write_json
    first, second = tmp_path / "a", tmp_path / "b"
    for root in (first, second):
        write_results(root, hosts=("gpu-box",))
        for path in sorted(root.rglob("dummy-*.json")):
            record = read_json(path)
            if record["status"] != "ok" or record["config"]["device"] != "cuda":
                continue
            for entry in record["processes"]:
                entry["contention"] = {"elsewhere_contended": False, "elsewhere_share": 0.002, **BAR}
            write_json(path, record)
    moved = next(path for path in sorted(second.rglob("dummy-*.json"))  # not eager fp16: its processes differ
                 if "cuda" in path.parts[-3] and read_json(path)["status"] == "ok"
                 and (read_json(path)["config"]["format"], read_json(path)["config"]["precision"]) != ("torch", "fp16"))
    record = read_json(moved)
    # the watch's own flag left false, as an H100 host's many processes made it: the share decides
    record["processes"][0]["contention"] = {"elsewhere_contended": False, "elsewhere_share": 0.4, **BAR}
    record["timing"]["processes"][0]["gpu_ms"] *= 1.05
    record["timing"]["processes"][0]["gpu_retaken"] = 3  # its spin check took three samples again
    for process in record["timing"]["processes"][1:]:
        process["gpu_retaken"] = process["gpu_unhidden"] = 0
    write_json(moved, record)
    return first, second, record["config"]


def record_of(root, config):
    from fmtbench.atomic import read_json
    return next(read_json(path) for path in sorted(root.rglob("dummy-*.json"))
                if read_json(path)["config"] == config)


def test_each_process_is_set_against_its_rows_quiet_processes_and_counted_by_what_shared_the_host(tmp_path):
    first, second, config = _runs(tmp_path)
    table = process_spread.processes([first, second])
    assert set(table["run"]) == {1, 2} and table["beside"].sum() == 1
    compared = process_spread.against_reference(table)
    steady = (compared["format"] != "torch") | (compared["precision"] != "fp16")  # the fixture's bimodal one aside
    assert compared.loc[steady & ~compared["beside"], "difference"].max() < 1e-9, "the quiet processes: the reference"
    bimodal = compared[~steady]
    assert bimodal["difference"].max() == pytest.approx(1.4 / 1.01 - 1), "the median of both runs' quiet processes"
    beside = compared[compared["beside"]].iloc[0]
    assert beside["difference"] == pytest.approx(0.05) and beside["run"] == 2 and beside["process"] == 1
    lines = process_spread.summary(compared).set_index("processes")
    assert lines.loc[process_spread.BESIDE, "count"] == 1 and lines.loc[process_spread.BESIDE, "beyond 2%"] == 1
    assert lines.loc[process_spread.QUIET, "beyond 1%"] == (bimodal["difference"] > 0.01).sum() > 0
    assert lines.loc[process_spread.BESIDE, "with samples retaken"] == "1 of 1"
    assert lines.loc[process_spread.BESIDE, "others' share of the CPUs"] == "40%–40%"
    assert lines.loc[process_spread.BESIDE, "with samples unhidden"] == "not recorded"
    quiet_recorded = len(record_of(second, config)["timing"]["processes"]) - 1
    assert lines.loc[process_spread.QUIET, "with samples retaken"] == f"0 of {quiet_recorded}"
    assert lines.loc[process_spread.BESIDE, "its row (run, process)"].startswith(
        " ".join(str(config[key]) for key in process_spread.KEYS[1:]))


def test_processes_without_a_watch_are_left_out_and_the_tool_writes_its_table(tmp_path, capsys):
    bare = tmp_path / "bare"
    write_results(bare, hosts=("gpu-box",))  # the fixture's processes have no contention record
    assert process_spread.processes([bare]).empty
    first, second, _ = _runs(tmp_path)
    out = tmp_path / "spread.md"
    assert process_spread.main([str(first), str(second), "--out", str(out)]) == 0
    text = out.read_text(encoding="utf-8")
    assert text.startswith("# Device time of each CUDA model-alone process") and "| other work beside it |" in text
    assert text in capsys.readouterr().out


def test_a_row_with_no_quiet_process_has_no_reference_and_is_counted_apart(tmp_path):
    from fmtbench.atomic import read_json, write_json
    first, second, _ = _runs(tmp_path)
    chosen = [path.relative_to(first) for path in sorted(first.rglob("dummy-*.json"))
              if "cuda" in path.parts[-3] and read_json(path)["status"] == "ok"][-1]  # not the row _runs moved
    crowded = [first / chosen, second / chosen]
    for path in crowded:  # one row, beside other work in every process of both runs
        record = read_json(path)
        for entry in record["processes"]:
            entry["contention"] = {"elsewhere_contended": False, "elsewhere_share": 0.4, **BAR}
        write_json(path, record)
    compared = process_spread.against_reference(process_spread.processes([first, second]))
    config = read_json(crowded[0])["config"]
    assert process_spread.unreferenced(compared) == [" ".join(str(config[key]) for key in process_spread.KEYS[1:])]
    left_out = compared[compared["reference_ms"].isna()]
    assert len(left_out) == 2 * len(read_json(crowded[0])["processes"]) and left_out["beside"].all()
    counted = process_spread.summary(compared).set_index("processes").loc[process_spread.BESIDE, "count"]
    assert counted == 1, "only the moved row's process beside other work is set against a reference"
