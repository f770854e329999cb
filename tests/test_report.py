import hashlib
import os
from types import SimpleNamespace
from pathlib import Path

import pandas as pd

from fixtures import model_provenance, write_results
from fmtbench.report import findings, frame, items, render

GOLDEN = Path(__file__).resolve().parent / "data" / "golden_report.md"
BASELINE = {"format": "torch", "precision": "fp32"}
MEASUREMENT = {"cpu": {"warmup_iters": 1, "warmup_seconds": 0, "min_iters": 3, "min_seconds": 0, "max_seconds": 12},
               "cuda": {"warmup_iters": 20, "warmup_seconds": 1.0, "min_iters": 50, "min_seconds": 2.0,
                        "max_seconds": 10.0},
               "noisy_iqr_ratio": 0.1}


def _render(root):
    paths = write_results(root)
    report = root / "report" / "report.md"
    render.render(paths, model_provenance(root), report, BASELINE, MEASUREMENT)
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
    assert len(digests(first)) == 2 * 2 + 2 + 1  # throughput per size per host, memory per host, cross-hardware


def test_report_states_weights_method_and_not_run_rows(tmp_path):
    text = _render(tmp_path).read_text()
    assert "weights: random init (seed 0; ImageNet weights unavailable" in text
    assert "## Not run" in text and "no CUDA device on this machine" in text and "oom" in text
    assert "## Across machines" in text
    assert "| function" in text and "dataloader_type" in text and "allocated_memory" in text


def test_speedup_is_against_the_same_shape_loader_and_device_and_positive(tmp_path):
    results = frame.with_speedup(frame.load(write_results(tmp_path)), "torch", "fp32")
    ok = results[results["status"] == "ok"]
    assert (ok["speedup"] > 0).all()
    baseline_rows = ok[(ok["format"] == "torch") & (ok["precision"] == "fp32")]
    assert (baseline_rows["speedup"] == 1.0).all()
    onnx = ok[(ok["format"] == "onnx") & (ok["precision"] == "fp32")]
    assert onnx["speedup"].round(6).eq(round(10.0 / 8.0, 6)).all()


def test_findings_are_computed_from_the_data(tmp_path):
    results = frame.load(write_results(tmp_path))
    lines = findings.all_findings(results)
    assert any(line.startswith("Fastest at 32² on cuda (`gpu-box`): onnx fp16") for line in lines)
    assert any("fp16 over fp32, torch on cuda (`gpu-box`): median ×2.00" in line for line in lines)
    assert any("Accuracy outlier: onnx fp16" in line for line in lines)
    assert any(line.startswith("Lowest memory on cpu") and "onnx" in line for line in lines)


def test_empty_results_are_reported_as_such():
    assert findings.all_findings(pd.DataFrame({"status": []})) == ["No configuration was measured."]


def test_html_report_items_one_table_per_machine_size_and_format_and_a_csv_of_every_row(tmp_path):
    paths = write_results(tmp_path)
    tables, csv = tmp_path / "report" / "tables", tmp_path / "report" / "results.csv"
    render.render(paths, model_provenance(tmp_path), tmp_path / "report" / "report.md", BASELINE, MEASUREMENT,
                  tables_dir=tables, results_csv=csv)
    ok = frame.load(paths).query("status == 'ok'")
    expected = {items.table_path(tables, int(size), fmt, host)
                for host, size, fmt in ok[["host", "image_size", "format"]].drop_duplicates().itertuples(index=False)}
    assert set(tables.rglob("*.html")) == expected
    onnx_gpu = items.table_path(tables, 32, "onnx", "gpu-box").read_text()
    assert "<title>onnx, 32×32, on gpu-box</title>" in onnx_gpu and "allocated_memory (MB)" in onnx_gpu
    assert len(pd.read_csv(csv)) == len(paths)


def test_html_report_figures_are_grouped_by_image_size_or_under_all_sizes():
    def wildcards(host, figure):
        return SimpleNamespace(host=host, figure=figure)
    assert items.figure_category(wildcards("h100", "throughput_224")) == "224×224"
    assert items.figure_category(wildcards("h100", "memory")) == items.ALL_SIZES
    assert items.figure_labels(wildcards(items.ALL_MACHINES, "best_per_format")) == {
        "figure": "best configuration of each format per machine", "machine": "all machines"}
    assert items.figure_labels(wildcards("h100", "throughput_160"))["figure"] == "throughput vs batch size"
