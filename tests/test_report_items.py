"""The HTML report's items: one table per machine, size and format, the figures, the captions, the front page."""
from types import SimpleNamespace

import pandas as pd
from fixtures import BASELINE, model_provenance, write_results

from fmtbench.report import frame, items, render, setup


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
