import hashlib
import os
import re
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
from fixtures import MEASUREMENT, model_provenance, write_results

from fmtbench.report import answer, cells, findings, frame, items, legend, marks, method, render, setup

GOLDEN = Path(__file__).resolve().parent / "data" / "golden_report.md"
BASELINE = {"format": "torch", "precision": "fp32"}
def _render(root):
    paths = write_results(root)
    report = root / "report" / "report.md"
    render.render(paths, model_provenance(root), report, BASELINE)
    return report


def test_report_matches_the_golden_file(tmp_path):
    text = _render(tmp_path).read_text()
    if os.environ.get("UPDATE_GOLDEN"):
        GOLDEN.write_text(text)
    assert text == GOLDEN.read_text()


def test_same_results_give_the_same_bytes_plots_included(tmp_path):
    first = _render(tmp_path / "a")
    second = _render(tmp_path / "b")
    assert first.read_bytes() == second.read_bytes()

    def digests(report):
        return {p.relative_to(report.parent): hashlib.sha256(p.read_bytes()).hexdigest()
                for p in sorted((report.parent / "plots").rglob("*.png"))}
    assert digests(first) == digests(second)
    # per host: throughput and end-to-end per size, fastest, memory and speedup; one cross-hardware figure
    assert len(digests(first)) == 2 * (2 * 2 + 3) + 1


def test_report_warns_about_random_weights_states_the_method_and_the_rows_not_run(tmp_path):
    text = _render(tmp_path).read_text()
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


def test_a_row_whose_processes_disagree_is_marked_and_counted(tmp_path):
    """Eager fp16 measured 1.79 ms in one process and 2.59 in another on the H100: a reader sees it now."""
    text = _render(tmp_path).read_text()
    gpu = text.split("## Results on `gpu-box`")[1].split("### 64×64")[1]
    row = next(line for line in gpu.splitlines() if re.match(r"\| torch +\| cuda +\| fp16 +\| 4 ", line))
    assert "‡" in row and "39.6% (3)" in row  # (28.0 - 20.0) / 20.2
    assert re.search(r"\d+ of \d+ measured configurations whose per-process medians spread by more than 5%", text)


def test_speedup_is_against_the_same_shape_loader_and_device_and_positive(tmp_path):
    results = frame.with_speedup(frame.load(write_results(tmp_path)), "torch", "fp32")
    ok = results[results["status"] == "ok"]
    assert (ok["speedup"].dropna() > 0).all()
    baseline_rows = ok[(ok["format"] == "torch") & (ok["precision"] == "fp32") & (ok["loader"] == "dummy")]
    assert (baseline_rows["speedup"] == 1.0).all()
    onnx = ok[(ok["format"] == "onnx") & (ok["precision"] == "fp32")]
    assert onnx["speedup"].dropna().round(6).eq(round(10.0 / 8.0, 6)).all()
    real = ok[ok["loader"] == "real"]
    assert real["speedup"].isna().all(), "real-loader rows have an end-to-end figure, not a model speedup"


def test_findings_compare_like_with_like_and_name_strict_fp32(tmp_path):
    results = frame.load(write_results(tmp_path))
    lines = findings.all_findings(results, "torch", random_weights=True)
    fastest = [line for line in lines if line.startswith("Fastest")]
    assert any(line.startswith("Fastest (model, back to back throughput) on cuda (`gpu-box`), dummy loader")
               for line in fastest)
    assert any(line.startswith("Fastest (end-to-end throughput) on cuda (`gpu-box`), real loader")
               for line in fastest)
    assert any("fp16 over strict fp32 (TF32 off), torch on cuda (`gpu-box`)" in line for line in lines)
    assert not any("fp16 over fp32, torch on cuda" in line for line in lines)
    memory = [line for line in lines if line.startswith("Lowest memory")]
    assert {re.search(r", (\w+) loader", line).group(1) for line in memory} == {"real", "dummy"}
    assert any(line.startswith("Accuracy: all 60 rows checked are within") for line in lines)
    assert any("torch on cuda (`gpu-box`): no pair to compare; left out: 32² bs 4, 32² bs 8, 64² bs 4, 64² bs 8 (‡ "
               "their processes disagree)" in line for line in lines), "fp16 gains are not taken from rows whose "\
        "processes disagree"
    assert not any("Top-1" in line for line in lines), "random weights: top-1 agreement is not a finding"
    assert any("Top-1 agreement below 99 %: onnx fp16" in line
               for line in findings.all_findings(results, "torch", random_weights=False))


def test_accuracy_outlier_is_reported_with_its_relative_error(tmp_path):
    results = frame.load(write_results(tmp_path))
    results.loc[(results["format"] == "onnx") & (results["precision"] == "fp16"), "within_limit"] = False
    results.loc[(results["format"] == "onnx") & (results["precision"] == "fp16"), "max_rel_error"] = 0.05
    lines = findings.all_findings(results, "torch")
    assert any(line.startswith("Accuracy outlier: onnx fp16 on cuda") and "0.05 above the limit" in line
               for line in lines)


def test_empty_results_are_reported_as_such():
    assert findings.all_findings(pd.DataFrame({"status": []})) == ["No configuration was measured."]


def test_html_report_items_one_table_per_machine_size_and_format_and_a_csv_of_every_row(tmp_path):
    paths = write_results(tmp_path)
    tables, csv = tmp_path / "report" / "tables", tmp_path / "report" / "results.csv"
    render.render(paths, model_provenance(tmp_path), tmp_path / "report" / "report.md", BASELINE,
                  tables_dir=tables, results_csv=csv)
    ok = frame.load(paths).query("status == 'ok'")
    expected = {items.table_path(tables, int(size), fmt, host)
                for host, size, fmt in ok[["host", "image_size", "format"]].drop_duplicates().itertuples(index=False)}
    assert set(tables.rglob("*.html")) == expected
    onnx_gpu = items.table_path(tables, 32, "onnx", "gpu-box").read_text()
    assert "<title>onnx, 32×32, on gpu-box</title>" in onnx_gpu and "memory (MB)" in onnx_gpu
    assert "Warning — random weights" in onnx_gpu, "each HTML table says its weights are random"
    rows = pd.read_csv(csv)
    assert len(rows) == len(paths)
    assert rows["weights"].str.startswith("random init").all() and rows["random_weights"].all()


def test_html_report_figures_are_grouped_by_image_size_or_under_all_sizes(tmp_path):
    def wildcards(host, figure):
        return SimpleNamespace(host=host, figure=figure)
    inputs = SimpleNamespace(model=model_provenance(tmp_path))
    assert items.figure_category(wildcards("h100", "throughput_224")) == "224×224"
    assert items.figure_category(wildcards("h100", "end_to_end_224")) == "224×224"
    assert items.figure_category(wildcards("h100", "memory")) == items.ALL_SIZES
    labels = items.figure_labels(wildcards(items.ALL_MACHINES, "best_per_format"), inputs)
    assert labels["figure"] == "best configuration of each format per machine" and labels["machine"] == "all machines"
    assert labels["weights"].startswith(items.RANDOM_WEIGHTS_MARK)
    assert items.figure_labels(wildcards("h100", "end_to_end_160"), inputs)["figure"].startswith("model vs end-to-end")


def test_rows_timed_beside_other_work_are_marked_and_counted(tmp_path):
    results = frame.load(write_results(tmp_path))
    assert results["contended"].isna().all(), "results written without the field read as not known"
    busy = (results["format"] == "onnx") & (results["device"] == "cpu") & (results["status"] == "ok")
    results.loc[busy, "contended"] = True
    results.loc[busy, "others_cpu_share_max"] = 0.48
    lines = findings.all_findings(results, "torch")
    ok = int((results["status"] == "ok").sum())
    assert (f"{int(busy.sum())} of {ok} configurations measured while other processes used the machine (marked §; "
            "other processes took up to 48% of their cores") in " ".join(lines)
    marked = results[busy].iloc[0]
    assert cells.row_marks(marked).endswith("§") and "§" not in cells.row_marks(results[~busy].iloc[0])


def test_the_random_weights_warning_gives_the_one_class_share_per_image_size():
    """The CSV said 0.875 at 224² and 0.9375 at 256² while the warning said 100 %: each size is said."""
    from fixtures import MODEL_PROVENANCE
    ok = pd.DataFrame({"image_size": [224, 224, 256, 512], "reference_top1_share": [0.875, 0.875, 0.9375, None]})
    text = " ".join(setup.warnings(MODEL_PROVENANCE, ok))
    assert ("With these weights 87.5 % of the accuracy images share one predicted class at 224², 93.8 % at 256², so "
            "top-1 agreement is not reported") in text


def test_a_row_whose_accuracy_check_failed_says_so(tmp_path):
    results = frame.load(write_results(tmp_path))
    broken = (results["format"] == "torch") & (results["status"] == "ok")
    results.loc[broken, "accuracy_error"] = "RuntimeError: shape mismatch"
    results.loc[broken, "rel_error_limit"] = None
    lines = findings.all_findings(results, "torch")
    assert any(line.startswith("Accuracy not checked: torch") and "shape mismatch" in line for line in lines)
    assert cells.rel_error_text(results[broken].iloc[0]) == "check failed"


def test_rows_of_one_machine_on_several_cards_say_which_card_ran_which_format(tmp_path):
    """A study spread over two GPUs of one host (`--resources gpu=2`): one host tag, two cards; the machine line
    says so and which formats each ran; one card says nothing more."""
    results = frame.load(write_results(tmp_path))
    gpu = results[(results["host"] == "gpu-box")]
    assert setup.cards(gpu) is None, "results without card ids, or one card: nothing to say"
    cuda = (gpu["device"] == "cuda") & (gpu["status"] == "ok")
    gpu.loc[cuda, "gpu_uuid"] = ["GPU-a" if f == "torch" else "GPU-b" for f in gpu.loc[cuda, "format"]]
    line = setup.cards(gpu)
    assert "ran on 2 cards" in line and "card 1 (`GPU-a`): torch fp16, torch fp32" in line
    assert "card 2 (`GPU-b`): onnx fp16" in line
    gpu.loc[cuda, "gpu_uuid"] = "GPU-a"
    assert setup.cards(gpu) is None


def test_a_memory_figure_no_process_measured_alone_is_kept_out_of_tables_findings_and_plots(tmp_path):
    """torch.compile's dummy rows at 224² batch 64 read 44 MB on the H100 (every process ran them after another
    loader at that batch, whose recorded graph's pool was in their baseline): the report called that the lowest
    memory of all formats. Such a figure is a lower bound, in the CSV's memory_shared_mb only."""
    from fmtbench.atomic import read_json, write_json
    paths = write_results(tmp_path)
    shared = next(p for p in paths if "gpu-box/torch/cuda-fp16/64/dummy-bs8.json" in str(p))
    record = read_json(shared)
    record["memory"]["shared"] = "the CUDA graph ... is kept"
    record["memory"]["steady_mb"] = 1.0
    write_json(shared, record)
    results = frame.load(paths)
    row = results[(results["format"] == "torch") & (results["precision"] == "fp16") & (results["loader"] == "dummy")
                  & (results["batch_size"] == 8) & (results["host"] == "gpu-box")
                  & (results["image_size"] == 64)].iloc[0]
    assert pd.isna(row["memory_mb"]) and row["memory_shared_mb"] == 1.0
    assert not any(line.endswith(" 1 MB.") for line in findings.lowest_memory(results[results["status"] == "ok"]))


def _ok(tmp_path):
    results = frame.with_speedup(frame.load(write_results(tmp_path)), "torch", "fp32")
    return results[results["status"] == "ok"].copy()


def test_a_speedup_carries_the_marks_of_its_baseline_too(tmp_path):
    """A newcomer's CPU study: torch 224² batch 32 took 2530.6 ms while another job ran (§ in its table row), and
    every speedup against it spiked, unmarked."""
    ok = _ok(tmp_path)
    where = (ok["host"] == "gpu-box") & (ok["device"] == "cuda") & (ok["image_size"] == 64) & (ok["batch_size"] == 4)
    ok.loc[where & (ok["format"] == "torch") & (ok["precision"] == "fp32") & (ok["loader"] == "dummy"),
           "contended"] = True
    again = frame.with_speedup(ok.drop(columns=["speedup", "baseline_fps", "baseline_contended",
                                                "baseline_host_bound"]), "torch", "fp32")
    same = ((again["host"] == "gpu-box") & (again["device"] == "cuda") & (again["image_size"] == 64)
            & (again["batch_size"] == 4) & (again["loader"] == "dummy"))
    onnx = again[same & (again["format"] == "onnx") & (again["precision"] == "fp32")]
    assert cells.speedup_text(onnx.iloc[0]).endswith("× §"), "its baseline was timed beside other work"


def test_rows_whose_process_ranges_overlap_are_a_tie_not_a_ranking(tmp_path):
    ok = _ok(tmp_path)
    model = ok[(ok["loader"] == "dummy") & (ok["device"] == "cuda") & (ok["image_size"] == 32)].copy()
    model["host_bound"] = False  # a host-bound row is not ranked at all (its own test)
    onnx = model[(model["format"] == "onnx") & (model["precision"] == "fp16")]
    best = onnx["throughput_fps"].max()
    torch_fp16 = (model["format"] == "torch") & (model["precision"] == "fp16")
    model.loc[torch_fp16, "throughput_max_fps"] = best * 1.01  # its fastest process reaches the best row
    assert findings.fastest_model(model).startswith("a tie (their processes' ranges overlap): onnx fp16")
    model.loc[torch_fp16, "throughput_max_fps"] = best * 0.9
    assert not findings.fastest_model(model).startswith("a tie")


def test_a_ranking_of_rows_from_different_cards_says_so(tmp_path):
    ok = _ok(tmp_path)
    model = ok[(ok["loader"] == "dummy") & (ok["device"] == "cuda") & (ok["image_size"] == 32)].copy()
    model["host_bound"] = False  # a host-bound row is not ranked at all (its own test)
    model["gpu_uuid"] = "GPU-a"
    assert "different cards" not in findings.fastest_model(model)
    model.loc[model["format"] == "torch", "gpu_uuid"] = "GPU-b"
    assert findings.fastest_model(model).endswith("(measured on different cards, not calibrated against each other)")


def test_what_a_newcomer_reads_first_is_consistent_with_the_rows(tmp_path):
    """Legends once, not per table; the real loader's timed phase the same count in the method's two places; the
    one-line answer is the best median speedup of the rows, computed independently here."""
    paths = write_results(tmp_path)
    text = _render(tmp_path).read_text()
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


def test_captions_claim_no_precision_that_did_not_run(tmp_path):
    """Only fp32 ran: no caption says "fp16 vs fp32"."""
    from fmtbench.atomic import read_json
    paths = [path for path in write_results(tmp_path) if read_json(path)["config"]["precision"] == "fp32"]
    report = tmp_path / "report" / "report.md"
    render.render(paths, model_provenance(tmp_path), report, BASELINE)
    captions = [line for line in report.read_text().splitlines() if line.startswith("![")]
    assert captions and not [line for line in captions if "fp16" in line], captions


def test_the_html_front_page_says_what_ran_the_answer_and_the_findings(tmp_path):
    """Rendered as Snakemake renders it (Jinja, then docutils): no markup error, only what ran, with the answer and
    the findings of report.md."""
    import jinja2
    from docutils.core import publish_parts
    paths = [path for path in write_results(tmp_path) if "/cuda-fp16/" not in path]
    report, front = tmp_path / "report" / "report.md", tmp_path / "report" / "front.rst"
    render.render(paths, model_provenance(tmp_path), report, BASELINE, front_page=front)
    rst = jinja2.Environment(trim_blocks=True, lstrip_blocks=True).from_string(front.read_text()).render()
    page = publish_parts(rst, writer="html", settings_overrides={"report_level": 2, "halt_level": 5})["html_body"]
    assert "System Message" not in page and "system-message" not in page, page
    assert "Random weights." in page and "not ImageNet accuracy" in page
    assert "cpu: deploy with onnx fp32: a median 1.25× the throughput of torch fp32" in page
    findings = report.read_text().split("## Findings")[1].split("\n## ")[0]
    assert page.count("<li>Fastest (") == findings.count("\n- Fastest (") > 0
    measured = page.split("<strong>Measured</strong>")[1].split("<strong>Findings</strong>")[0]
    assert measured.count('<tt class="docutils literal">onnx</tt>') == 3 and "fp16" not in measured, measured


def _cuda_model(ok, size=32, batch=4):
    return ok[(ok["host"] == "gpu-box") & (ok["device"] == "cuda") & (ok["loader"] == "dummy")
              & (ok["image_size"] == size) & (ok["batch_size"] == batch)]


def test_cuda_rows_show_their_device_time_and_a_host_bound_speedup_is_from_it(tmp_path):
    """Issue 32: the device time reproduces between runs (16 of 16 CUDA rows within 1.3 %), a host-bound row's wall
    figures do not: it is shown beside the wall latency, and a speedup with a ◊ row is taken from it."""
    ok = _cuda_model(_ok(tmp_path))
    model, _ = marks.split(ok)
    table = cells.table(model, "model")
    torch_fp16 = (ok["format"] == "torch") & (ok["precision"] == "fp16")
    assert table["device time (ms)"].tolist() == [cells.ms(v) for v in ok["gpu_ms"]]
    row = ok[torch_fp16].iloc[0]
    baseline = ok[(ok["format"] == "torch") & (ok["precision"] == "fp32")].iloc[0]
    assert row["host_bound"] and row["speedup_basis"] == "device time"
    assert row["speedup"] == baseline["gpu_ms"] / row["gpu_ms"]
    assert cells.speedup_text(row) == f"{row['speedup']:.2f}× dev ◊"
    assert (ok[~torch_fp16]["speedup_basis"] == "throughput").all()
    # ONNX Runtime with its own CUDA graphs runs on a stream of its own: no device time, and the row says why
    graphs = ok[ok["format"] == "onnx"].iloc[0].copy()
    graphs["gpu_ms"] = None
    graphs["compute_stream"] = "ONNX Runtime's own (CUDA graphs): its device time is not measured"
    assert cells.device_ms_text(graphs) == "– °"
    text = legend.legend_texts(ok, BASELINE)["model"]
    assert "*device time* (CUDA rows)" in text and "`°`" in text and "marked `dev`" in text


def test_a_host_bound_rows_wall_figures_are_its_processes_range(tmp_path):
    ok = _cuda_model(_ok(tmp_path))
    row = ok[(ok["format"] == "torch") & (ok["precision"] == "fp16")].iloc[0]
    assert cells.latency_text(row) == f"{cells.ms(row['process_min_ms'])}–{cells.ms(row['process_max_ms'])} ‡◊"
    assert cells.throughput_text(row) == f"{row['throughput_min_fps']:.1f}–{row['throughput_max_fps']:.1f}"
    steady = ok[(ok["format"] == "onnx")].iloc[0]
    assert cells.latency_text(steady) == cells.ms(steady["latency_ms"])
    text = legend.legend_texts(ok, BASELINE)["model"]
    assert ("so its latency and throughput are this host's launch rate, shown as the range over its processes "
            "(the low end what the format does on a quiet host) and ranked by no finding") in text


def test_end_to_end_rows_give_their_verdict_and_the_capacity_is_a_table_of_the_hosts(tmp_path):
    ok = _ok(tmp_path)
    real = ok[(ok["host"] == "gpu-box") & (ok["loader"] == "real") & (ok["device"] == "cuda")].copy()
    assert cells.table(real, "e2e")["bound (e2e / capacity)"].eq("loader (97%)").all()
    real.loc[real.index[0], ["e2e_bound", "e2e_over_capacity"]] = ["model", 0.62]
    assert cells.table(real, "e2e")["bound (e2e / capacity)"].iloc[0] == "model (62%)"
    text = legend.legend_texts(ok, BASELINE)["e2e"]
    assert "*bound* = the slower stage: `loader` where that capacity is below the model's rate under load" in text
    from fmtbench.report import loaders
    lines = loaders.capacity_table(ok[ok["host"] == "gpu-box"])
    assert lines[0] == "### Decode capacity (the host's)"
    assert "this host's figure (its cores), not the format's" in lines[2]
    line = next(x for x in lines[4].splitlines() if re.match(r"\| real +\| cuda +\| 32² +\| 4 ", x))
    capacities = real[(real["image_size"] == 32) & (real["batch_size"] == 4)]["decode_capacity_fps"]
    assert (f"| {capacities.median():.1f} " in line and f"{capacities.min():.1f}–{capacities.max():.1f}" in line
            and line.rstrip(" |").endswith(str(len(capacities)))), line
    assert loaders.capacity_table(ok[ok["loader"] == "dummy"]) == []


def test_memory_is_defined_and_a_gpu_decode_rows_loader_share_is_shown_apart(tmp_path):
    results = frame.with_speedup(frame.load(write_results(tmp_path)), "torch", "fp32")
    decode = ((results["host"] == "gpu-box") & (results["device"] == "cuda") & (results["loader"] == "real")
              & (results["status"] == "ok"))
    results.loc[decode, "loader"] = "real_gpu_decode"
    results.loc[decode, "memory_mb"] += 100.0
    results = frame.with_loader_memory(results)
    assert results.loc[results["loader"] == "real_gpu_decode", "loader_memory_mb"].round(6).eq(100.0).all()
    assert results.loc[results["loader"] != "real_gpu_decode", "loader_memory_mb"].isna().all()
    ok = results[results["status"] == "ok"]
    _, real = marks.split(ok)
    assert cells.table(real, "e2e")["of which the loader (MB)"].isin(["100.0", "–"]).all()
    assert "of which the loader (MB)" not in cells.table(real[real["device"] == "cpu"], "e2e")
    assert "*of which the loader* = a GPU-decode row's memory minus" in legend.legend_texts(ok, BASELINE)["e2e"]
    assert ("A row's memory is its configuration's own: what it needs in a process that ran nothing before it, the "
            "median over its processes where it went first, else the median over all of them"
            ) in " ".join(method.section(ok, BASELINE))


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


def test_a_mark_every_row_of_a_kind_carries_is_said_once_not_in_every_cell(tmp_path):
    """A CPU study: all 16 real-loader rows marked * told nothing; a mark stays where it tells rows apart."""
    ok = _ok(tmp_path)
    ok = ok[ok["host"] == "cpu-box"].copy()
    real = ok["timing_kind"].eq("under_load")
    ok.loc[real, "stalled"] = True
    ok.loc[ok.index[0], "contended"] = True
    every = marks.on_every_row(ok)
    assert every == {"model": frozenset(), "e2e": frozenset({"*"})}
    tables = "\n".join(cells.markdown(ok, every))
    assert not [line for line in tables.splitlines() if "*" in line], tables
    assert len([line for line in tables.splitlines() if "§" in line]) == 1, tables
    text = legend.legend_texts(ok, BASELINE)
    assert "Every end-to-end row carries `*` (below 90% of min(model under load, decode capacity))" in text["e2e"]
    assert "`§` measured while other processes used its cores, the machine (CPU rows))" in text["model"]
    line = next(line for line in findings.reliability(ok) if "stayed below" in line)
    assert "marked *, left out of the cells of the end-to-end rows, which all carry it" in line, line


def test_the_answer_takes_the_tables_figures_and_names_the_configurations_it_left_out(tmp_path):
    """Issue 32's seed complaint: on a CPU study "In short" said onnx fp32 is 2.17× torch fp32 (one pair) while the
    tables said 3.3–4.75×, the other pairs left out for § without a word."""
    ok = _ok(tmp_path)
    ok = ok[ok["host"] == "cpu-box"].copy()
    onnx = ok[(ok["format"] == "onnx") & (ok["loader"] == "dummy")].sort_values(["image_size", "batch_size"])
    ok.loc[onnx.index, "speedup"] = [3.3, 4.0, 4.75, 2.17]
    ok.loc[onnx.index[:3], "contended"] = True
    line = answer.answer(ok, "torch", "fp32")[0]
    assert ("deploy with onnx fp32: a median 2.17× the throughput of torch fp32 (the baseline), in its one "
            "configuration without a mark (64² bs 8); the model alone, same batch and image size, from back-to-back "
            "throughput; left out: onnx fp32 32² bs 4, 32² bs 8, 64² bs 4 (§ measured beside other work; "
            "3.30×–4.75× in the tables).") in line, line
    ok.loc[onnx.index, "contended"] = True
    line = answer.answer(ok, "torch", "fp32")[0]
    assert line.startswith("On this machine, cpu: no configuration to compare with torch fp32 without a mark; left "
                           "out: onnx fp32 32² bs 4, 32² bs 8, 64² bs 4, 64² bs 8 (§ measured beside other work; "
                           "2.17×–4.75× in the tables)"), line


def test_findings_rank_no_host_bound_row_and_compare_one_by_its_device_time(tmp_path):
    ok = _ok(tmp_path)
    gpu = ok[ok["host"] == "gpu-box"].copy()
    fastest = " ".join(findings.fastest(gpu))
    assert ("32²: onnx fp16 at batch 4, 933 img/s (not ranked: torch fp16 bs 4, torch fp16 bs 8 — ◊ host-bound, their "
            "wall rate is this host's)") in fastest
    gpu["unstable"] = False  # the ◊ rows' processes agree: the fp16 gain over them is from their device time
    onnx_fp32 = (gpu["format"] == "onnx") & (gpu["precision"] == "fp32") & (gpu["image_size"] == 64)
    gpu.loc[onnx_fp32, "contended"] = True
    lines = findings.fp16_gain(gpu)
    torch_line = next(line for line in lines if ", torch on cuda" in line)
    assert "device time for the 2 with a ◊ row (32² bs 4, 32² bs 8)" in torch_line, torch_line
    pairs = gpu[(gpu["format"] == "torch") & (gpu["loader"] == "dummy") & (gpu["device"] == "cuda")]
    strict = pairs[(pairs["precision"] == "fp32") & (pairs["image_size"] == 32)].sort_values("batch_size")
    half = pairs[(pairs["precision"] == "fp16") & (pairs["image_size"] == 32)].sort_values("batch_size")
    by_device = strict["gpu_ms"].to_numpy() / half["gpu_ms"].to_numpy()
    assert f"×{by_device.max():.2f}" in torch_line, torch_line
    onnx_line = next(line for line in lines if ", onnx on cuda" in line)
    assert "left out: 64² bs 4 (§ measured beside other work)" in onnx_line, onnx_line
