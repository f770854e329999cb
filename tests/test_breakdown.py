"""tools/breakdown.py (a developer's tool): where a study's time went, read from its result files."""
import sys
from pathlib import Path

import pytest
from fixtures import write_results

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tools"))
import breakdown  # noqa: E402


def test_the_cuda_processes_are_added_up_by_scope_with_their_turn_waits(tmp_path):
    """What one GPU does in series (issue 35: the whole grid's CUDA jobs took ~160 s each on an H100): every CUDA
    measuring process once, split into model-alone and end-to-end, and the seconds they waited for the host."""
    from fmtbench.atomic import read_json, write_json
    for path in write_results(tmp_path / "artifacts" / "results"):
        record = read_json(path)
        if record["config"]["loader"] == "dummy" and record.get("processes"):  # a process of its own, as measured
            for entry in record["processes"]:
                entry["stages_s"]["forked_at"] += 100.0
            write_json(path, record)
    configs, processes = breakdown.process_rows(tmp_path)
    cuda = processes[processes["device"] == "cuda"]
    assert set(cuda["scope"]) == {"model alone", "end to end"}
    lines = breakdown.serial_time(processes)
    text = "\n".join(lines)
    assert "## The CUDA measuring processes, one after the other on one GPU" in text
    for scope in ("model alone", "end to end"):
        assert f"| {scope}" in text
    assert f"In all {cuda['total'].sum():.0f} s measuring and 0 s waiting" in text
    assert breakdown.serial_time(processes[processes["device"] == "cpu"]) == [], "no CUDA rows: nothing to add up"
    assert breakdown._scope("model alone", "real") == "both" and breakdown._scope(None, "real") == "end to end"


def test_a_jobs_preparation_is_read_step_by_step_from_its_last_run():
    text = ("... job process: 1.9 s from its start to its first step\n"
            "torch cuda fp16 224×224: prepared in export checked 0.5 s, availability 0.0 s, imports 9.0 s\n"
            "... job process: 1.4 s from its start to its first step\n"
            "onnx cuda fp16 224×224: prepared in export checked 0.1 s, availability 0.2 s, imports 5.5 s, "
            "environment 0.7 s, tuning (a forked process) 3.0 s\n"
            "onnx cuda fp16 256×256: prepared in export checked 0.1 s, availability 0.0 s, imports 0.0 s, "
            "environment 0.6 s, tuning (a forked process) 2.5 s\n"
            "2 image size(s): exports checked and prepared in 12.8 s\n")
    steps = breakdown.preparation_steps(text)
    assert steps == pytest.approx({"export checked": 0.2, "availability": 0.2, "imports": 5.5, "environment": 1.3,
                                   "tuning (a forked process)": 5.5})
    assert breakdown.preparation_steps("no such lines") == {}


def test_the_gaps_between_a_process_configurations_are_its_end_to_the_next_start():
    """Issue 35: the time between two configurations of a process (the collection after gc.freeze's cut), per
    process, never across processes or from a configuration to itself."""
    import pandas as pd
    rows = [  # (process forked at, started at, done at), two CUDA processes and one CPU one
        (1.0, 0.5, 1.5), (1.0, 1.7, 2.5), (1.0, 2.6, 3.0),
        (9.0, 0.4, 1.0), (9.0, 1.4, 2.0),
        (5.0, 0.3, 9.0),
    ]
    configs = pd.DataFrame([{"format": "torch", "device": "cpu" if forked == 5.0 else "cuda", "precision": "fp32",
                             "image_size": 224, "forked_at": forked, "started at": start, "done at": done}
                            for forked, start, done in rows])
    text = "\n".join(breakdown.between_configurations(configs))
    table = text.split("\n\n")[2]
    cuda = next(line for line in table.splitlines() if line.startswith("| cuda"))
    cells = [cell.strip() for cell in cuda.strip("|").split("|")]
    assert cells[:2] == ["cuda", "3"], "0.2 and 0.1 in the first process, 0.4 in the second"
    assert float(cells[2]) == pytest.approx(0.2) and float(cells[4]) == pytest.approx(0.4)
    assert float(cells[5]) == pytest.approx(0.7)
    assert "| cpu" not in table, "a process of one configuration has no gap"
    assert breakdown.between_configurations(configs.drop(columns=["started at"])) == []
