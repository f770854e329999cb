"""The report as a whole: the golden file, the same bytes for the same rows, its warnings, its method, what did
not run."""
import hashlib
import os
import re
from pathlib import Path

import pandas as pd
from fixtures import BASELINE, MEASUREMENT, model_provenance, render_report, write_results

from fmtbench.report import findings, frame, render, setup

GOLDEN = Path(__file__).resolve().parent / "data" / "golden_report.md"


def test_report_matches_the_golden_file(tmp_path):
    text = render_report(tmp_path).read_text()
    if os.environ.get("UPDATE_GOLDEN"):
        GOLDEN.write_text(text)
    assert text == GOLDEN.read_text()


def test_same_results_give_the_same_bytes_plots_included(tmp_path):
    first = render_report(tmp_path / "a")
    second = render_report(tmp_path / "b")
    assert first.read_bytes() == second.read_bytes()

    def digests(report):
        return {p.relative_to(report.parent): hashlib.sha256(p.read_bytes()).hexdigest()
                for p in sorted((report.parent / "plots").rglob("*.png"))}
    assert digests(first) == digests(second)
    # per host: throughput and end-to-end per size, fastest, memory and speedup; one cross-hardware figure
    assert len(digests(first)) == 2 * (2 * 2 + 3) + 1


def test_report_warns_about_random_weights_states_the_method_and_the_rows_not_run(tmp_path):
    text = render_report(tmp_path).read_text()
    assert text.index("**Warning — random weights.**") < text.index("## Setup")
    assert "ImageNet weights unavailable" in text and "top-1 agreement is not reported" in text
    assert "## Not run" in text and "no CUDA device on this machine" in text and "oom" in text
    assert "## Across machines" in text
    assert "`function`" in text and "`dataloader_type`" in text and "`allocated_memory`" in text  # in the legends
    assert "| latency p50 (ms)" in text and "| end-to-end (img/s)" in text and "| throughput (img/s)" in text
    for part in ("measured in 2 processes each, up to 5", "median of its processes' medians",
                 "one endless sampler feeds them", "Decode capacity", "the model's load plus its own peak growth",
                 "a first call at a new shape peaked", "host-bound (◊)", "in processes of their own",
                 "√L·(u_in + √K·u_acc)", "CPU rows ran on 7 logical CPUs (7 physical cores)",
                 "2 processes: 20 rows, 3 processes: 8 rows", "stopped on: ci"):
        assert part in text, part


def test_the_method_says_what_the_rows_recorded_not_what_the_code_does_now(tmp_path):
    """A row measured with other settings is described by its own settings (the published rows' `stops` said `ci`
    where the text said they never stop on it)."""
    import json

    from fmtbench.atomic import read_json
    from fmtbench.atomic import write_json as write
    paths = write_results(tmp_path)
    for path in paths:
        record = read_json(path)
        if record["status"] == "ok" and record["config"]["device"] == "cuda":
            record["measurement"] = {**record["measurement"], "processes": 3, "max_seconds": 7.5}
            write(path, record)
    report = tmp_path / "report" / "report.md"
    render.render(paths, model_provenance(tmp_path), report, BASELINE)
    text = report.read_text()
    assert "measured in 3 processes each" in text and "or 7.5 s had passed" in text
    assert json.dumps(MEASUREMENT["cuda"]["max_seconds"]) + " s had passed" not in text.split("CPU rows")[0]
    assert "C heap" not in text  # the fixture's rows predate the record: nothing is said for them
    assert "for a real loader's rows" not in text


def test_the_method_says_how_many_processes_a_real_loaders_rows_took_where_it_differs(tmp_path):
    from fmtbench.atomic import read_json
    from fmtbench.atomic import write_json as write
    paths = write_results(tmp_path)
    for path in paths:
        record = read_json(path)
        if record["status"] == "ok" and record["config"]["device"] == "cuda":
            record["measurement"] = {**record["measurement"], "end_to_end_processes": 1}
            write(path, record)
    report = tmp_path / "report" / "report.md"
    render.render(paths, model_provenance(tmp_path), report, BASELINE)
    cuda_line = next(line for line in report.read_text().splitlines() if line.startswith("- **CUDA rows"))
    assert "measured in 2 processes each (1 for a real loader's rows)" in cuda_line


def test_the_method_says_how_the_c_heap_was_set_where_the_rows_recorded_it(tmp_path):
    from fmtbench.atomic import read_json
    from fmtbench.atomic import write_json as write
    paths = write_results(tmp_path)
    for path in paths:
        record = read_json(path)
        if record["status"] == "ok":
            harness = {**record["measurement"]["harness"], "keep_freed_memory": record["config"]["device"] == "cpu"}
            record["measurement"] = {**record["measurement"], "harness": harness}
            write(path, record)
    report = tmp_path / "report" / "report.md"
    render.render(paths, model_provenance(tmp_path), report, BASELINE)
    text = report.read_text()
    assert "keeps the memory a call frees for the next call" in text
    assert "returns large freed blocks to the kernel" in text
    assert "gc.freeze" not in text, "rows that did not record the switch: nothing said of it"


def test_the_method_says_where_a_process_froze_what_it_held_after_loading(tmp_path):
    from fmtbench.atomic import read_json
    from fmtbench.atomic import write_json as write
    paths = write_results(tmp_path)
    for path in paths:
        record = read_json(path)
        if record["status"] == "ok":
            harness = {**record["measurement"]["harness"], "freeze_after_load": True}
            record["measurement"] = {**record["measurement"], "harness": harness}
            write(path, record)
    report = tmp_path / "report" / "report.md"
    render.render(paths, model_provenance(tmp_path), report, BASELINE)
    assert "is frozen out of its collections (gc.freeze)" in report.read_text()


def test_the_method_says_which_turn_on_the_host_the_processes_ran_on_and_how_long_they_waited(tmp_path):
    """CPU rows beside the CUDA jobs (fmtbench.host_turns): the method says a CPU process ran on an exclusive turn
    and what the waits added up to; a real-loader CUDA process on a shared one."""
    from fmtbench.atomic import read_json
    from fmtbench.atomic import write_json as write
    paths = write_results(tmp_path)
    for path in paths:
        record = read_json(path)
        if record["status"] != "ok" or record["config"]["host"] != "gpu-box":
            continue
        cpu = record["config"]["device"] == "cpu"
        if not cpu and record["config"]["loader"] == "dummy":
            turn = None
        else:
            turn = {"kind": "exclusive" if cpu else "shared", "waited_s": 2.5 if cpu else 0.0, "coordinated": True}
        record["measurement"] = {**record["measurement"],
                                 "harness": {**record["measurement"]["harness"], "host_turns": True}}
        record["processes"] = [{**entry, **({"turn": turn} if turn else {})} for entry in record["processes"]]
        write(path, record)
    report = tmp_path / "report" / "report.md"
    render.render(paths, model_provenance(tmp_path), report, BASELINE)
    text = report.read_text()
    cpu_line = next(line for line in text.splitlines() if line.startswith("- **CPU rows") and "exclusive" in line)
    measured = [p for r in map(read_json, paths) if r["status"] == "ok" and r["config"]["device"] == "cpu"
                and r["config"]["host"] == "gpu-box" for p in r["processes"]]
    assert (f"{len(measured)} of its {len(measured)} configuration measurements waited for it, "
            f"{2.5 * len(measured):.0f} s in all") in cpu_line
    cuda_line = next(line for line in text.splitlines() if line.startswith("- **CUDA rows"))
    assert "shared turn on the host" in cuda_line and "waited" not in cuda_line.split("shared turn")[1][:80]


def test_a_cpu_only_study_says_its_turns_without_cuda_words(tmp_path):
    from fmtbench.atomic import read_json
    from fmtbench.atomic import write_json as write
    paths = [path for path in write_results(tmp_path) if read_json(path)["config"]["device"] == "cpu"]
    for path in paths:
        record = read_json(path)
        if record["status"] != "ok":
            continue
        record["measurement"] = {**record["measurement"],
                                 "harness": {**record["measurement"]["harness"], "host_turns": True}}
        turn = {"kind": "exclusive", "waited_s": 0.0, "coordinated": True}
        record["processes"] = [{**entry, "turn": turn} for entry in record["processes"]]
        write(path, record)
    report = tmp_path / "report" / "report.md"
    render.render(paths, model_provenance(tmp_path), report, BASELINE)
    cpu_lines = [line for line in report.read_text().splitlines() if line.startswith("- **CPU rows")]
    assert cpu_lines and all("no export or reference of the study ran meanwhile" in line for line in cpu_lines)
    assert not any("CUDA" in line for line in cpu_lines)


def test_rows_the_study_asks_for_without_a_result_are_listed_as_not_run(tmp_path):
    paths = write_results(tmp_path)
    missing = tmp_path / "artifacts/results/gpu-box/torch/cuda-fp16/512/dummy-bs64.json"
    report = tmp_path / "report" / "report.md"
    render.render(paths + [str(missing)], model_provenance(tmp_path), report, BASELINE)
    text = report.read_text()
    assert f"of the {len(paths) + 1} configurations the study asks for" in text
    assert "37 were not run (4 oom, 32 unavailable, 1 without a result file: see Not run)" in text
    assert "37 configurations were not run." in text.split("## Not run")[1]
    assert f"- `{missing}`" in text.split("## Not run")[1]


def test_empty_results_are_reported_as_such():
    assert findings.all_findings(pd.DataFrame({"status": []})) == ["No configuration was measured."]


def test_the_random_weights_warning_gives_the_one_class_share_per_image_size():
    """The CSV said 0.875 at 224² and 0.9375 at 256² while the warning said 100 %: each size is said."""
    from fixtures import MODEL_PROVENANCE
    ok = pd.DataFrame({"image_size": [224, 224, 256, 512], "reference_top1_share": [0.875, 0.875, 0.9375, None]})
    text = " ".join(setup.warnings(MODEL_PROVENANCE, ok))
    assert ("With these weights 87.5 % of the accuracy images share one predicted class at 224², 93.8 % at 256², so "
            "top-1 agreement is not reported") in text


def test_what_a_newcomer_reads_first_is_consistent_with_the_rows(tmp_path):
    """Legends once, not per table; the real loader's timed phase the same count in the method's two places; the
    one-line answer is the best median speedup of the rows, computed independently here."""
    paths = write_results(tmp_path)
    text = render_report(tmp_path).read_text()
    assert text.count("*Model alone (dummy loader).*") == 1 and text.count("*End to end (real loaders).*") == 1
    assert text.index("## Reading the tables") < text.index("## Results on")
    settings = re.findall(r"real loaders: the batches the loader held ready, then whole rounds of their workers back "
                          r"to back \((\d+) batches per process", text)
    loader = re.findall(r"whole rounds of the workers, at least `min_iters` batches: (\d+) batches per process in "
                        r"this run", text)
    assert settings and set(loader) == set(settings), (settings, loader)
    rows = frame.with_speedup(frame.load(paths), "torch", "fp32").query("status == 'ok' and loader == 'dummy'")
    cpu = rows[(rows["host"] == "cpu-box") & (rows["device"] == "cpu")]
    medians = cpu.groupby(["format", "precision"])["speedup"].median()
    best = medians.idxmax()
    short = text.split("**In short:**")[1].split("## Setup")[0]
    assert (f"On `cpu-box`, cpu: deploy with {best[0]} {best[1]}: a median {medians.max():.2f}× the throughput of "
            "torch fp32 (the baseline)") in short, short


def test_a_cpu_only_report_has_no_device_time_and_its_capacity_table(tmp_path):
    paths = write_results(tmp_path, hosts=("cpu-box",))
    report = tmp_path / "report" / "report.md"
    render.render(paths, model_provenance(tmp_path), report, BASELINE)
    text = report.read_text()
    assert "device time" not in text and "°" not in text and "× dev" not in text
    assert "### Decode capacity (the host's)" in text and "GPU's decoder" not in text
    assert "| bound (e2e / capacity) " in text and "loader (97%)" in text
    # only what applies to what ran: no CUDA words above the Not run section (which lists the CUDA rows; the ONNX
    # Runtime line is that backend's own note), the coverage of the process counts that occurred, one limit
    ran = [line for line in text.split("## Not run")[0].splitlines() if not line.startswith("- **ONNX Runtime:**")]
    for word in ("CUDA", "TF32", "nvJPEG", "†", "◊", "device time", "GPU"):
        assert not [line for line in ran if word in line], word
    assert "from 2 processes" not in text and "a row of one process has the interval" in text
    assert "limit 1.7e-05)" in text
    assert text.index("## Results on") < text.index("## Setup") < text.index("### How it was measured")
