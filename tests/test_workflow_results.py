"""The real workflow through Snakemake, in a temporary directory, on a tiny CPU study: what its first run writes (the
result JSONs, the console, the report, the CSV, the HTML report)."""
import json
import re

import pytest
from helpers_workflow import HOST, REPO, result_paths, snakemake

from fmtbench import results

pytestmark = pytest.mark.workflow


def test_every_configuration_has_a_valid_json(study):
    _, workdir = study
    paths = result_paths(workdir)
    # torch cpu + cuda, onnx cpu, torchscript cpu, torch_trt cuda; 2 sizes; 1 batch; 2 loaders
    assert len(paths) == 5 * 2 * 2
    for path in paths:
        result = json.loads(path.read_text())
        results.validate(result)
        config = result["config"]
        if config["device"] == "cpu":
            assert result["status"] == "ok", result["reason"]
            assert result["timing"]["pooled"]["count"] >= 3 and result["timing"]["median"] > 0
            assert len(result["timing"]["processes"]) == len(result["processes"]) == 1
            assert all(p["stages_s"]["started"] < p["config_stages_s"]["config_end"] < p["stages_s"]["exited"]
                       for p in result["processes"])
            assert {p["configurations"] for p in result["processes"]} == {1}, "the model alone apart from its loader"
            assert result["measurement"]["processes"] == 1
            assert result["memory"]["allocated_mb"] >= 0 and result["memory"]["load_mb"] >= 0
            assert result["accuracy"]["within_limit"] and result["accuracy"]["non_finite_images"] == 0
            assert (result["throughput"]["end_to_end_fps"] is not None) == (config["loader"] == "real")
            assert result["environment"]["cpu_affinity"] and result["environment"]["torch_threads"] == 1
        else:
            assert result["status"] == "unavailable"
            assert "no CUDA device" in result["reason"]


def test_an_expected_unavailability_is_one_calm_line_not_a_traceback(study):
    _, workdir = study
    console = (workdir / "first-run.out").read_text()
    assert "Traceback" not in console
    assert not [line for line in console.splitlines() if " ERROR " in line]
    assert "torch_trt cuda fp16 32×32: unavailable: no CUDA device on this machine" in console
    assert "export torch_trt" not in console, "no export is built for rows this machine cannot run"


def test_report_has_the_rows_and_lists_what_did_not_run(study):
    _, workdir = study
    report = (workdir / "report" / "report.md").read_text()
    assert "weights: random init (seed 0)" in report
    assert "- **Formats:** `onnx` ONNX Runtime; `torch` PyTorch eager; `torchscript` TorchScript." in report
    for size in (32, 64):
        assert f"### {size}×{size}" in report
    for fmt in ("torch", "onnx", "torchscript"):
        assert re.search(rf"^\| {fmt} +\| cpu +\| fp32 +\| real +\| 2 ", report, re.M)  # end to end
        assert re.search(rf"^\| {fmt} +\| cpu +\| fp32 +\| 2 ", report, re.M)  # the model alone
    assert re.search(r"\| torch_trt +\| cuda +\| fp16 +\| unavailable", report)
    assert "**Torch-TensorRT:**" not in report, "the method of rows that did not run is not described"
    assert "**ONNX Runtime:**" in report, "the format's note, from its FormatSpec"
    assert "**CUDA rows (" not in report and "**CPU rows (" in report
    assert (workdir / "report" / "plots" / HOST / f"throughput_32_{HOST}.png").stat().st_size > 1000


def _key_paths(value, prefix=""):
    """Every key path of a JSON document with its value's kind (lists merged, the environment's keys left out)."""
    found = set()
    if isinstance(value, dict):
        for key, inner in value.items():
            found.add(f"{prefix}/{key}:{type(inner).__name__.replace('int', 'float')}")
            if key != "environment":
                found |= _key_paths(inner, f"{prefix}/{key}")
    elif isinstance(value, list):
        for inner in value:
            found |= _key_paths(inner, f"{prefix}[]")
    return found


# What schema version 4 adds to a CPU real-loader row of version 3 (besides the settings and thresholds it was
# measured with): the memory's steady state and first call apart, the end-to-end window after the loader's
# stock and its check against the capacity, what others used anywhere on the machine and the study's own share.
ADDED_IN_4 = {
    "/memory/steady_mb:float", "/memory/first_call_peak_mb:float", "/memory/steady_mb_processes:list",
    "/memory/steady_disagree:bool", "/processes[]/memory/steady_mb:float",
    "/processes[]/memory/first_call_peak_mb:float", "/throughput/above_capacity:bool",
    "/timing/processes[]/steady_batches:float", "/timing/processes[]/steady_seconds:float",
    "/contention/elsewhere_share_max:float", "/processes[]/contention/study_cpu_s:float",
    "/processes[]/contention/elsewhere_s:float", "/processes[]/contention/elsewhere_share:float",
    "/processes[]/contention/elsewhere_contended:bool"}
# ... and schema 5: which processes a row's memory figure comes from.
ADDED_IN_5 = {"/memory/chosen_from:str"}
# ... and schema 7: the host's turn each configuration of a CPU row was measured on (fmtbench.host_turns).
ADDED_IN_7 = {"/processes[]/turn:dict", "/processes[]/turn/kind:str", "/processes[]/turn/waited_s:float",
              "/processes[]/turn/coordinated:bool"}
# ... and its CSV: host-bound rows and the GPU time behind them, the processes' range of rates and of memory, the
# first call's and the overall memory peak (`memory_mb` is the steady state now), the capacity check, others
# anywhere, and the marks a speedup's baseline carries.
COLUMNS_ADDED_IN_4 = {"throughput_min_fps", "throughput_max_fps", "gpu_busy_share", "host_bound", "gpu_ms",
                      "e2e_above_capacity", "memory_min_mb", "memory_max_mb", "memory_disagree", "memory_first_call_mb",
                      "memory_peak_mb", "others_elsewhere_share_max", "baseline_contended", "baseline_host_bound"}
# ... and since: a real-loader row's verdict and end-to-end / capacity, where the memory figure came from, the
# stream ONNX Runtime ran on, which figure a speedup took (and the baseline's device time), a GPU-decode row's
# loader share, how much of the back-to-back phase the GPU was busy (schema 8; absent from a CPU row's JSON),
# the device-time samples its spin check took again or could not hide (schema 8, optional).
COLUMNS_ADDED_SINCE_4 = {"e2e_bound", "e2e_over_capacity", "memory_chosen_from", "compute_stream", "speedup_basis",
                         "baseline_gpu_ms", "loader_memory_mb", "rate_busy_share",
                         "gpu_retaken", "gpu_unhidden"}


def test_the_rows_and_the_csv_keep_every_field_the_previous_version_wrote(study):
    """The same tiny study as the code before the typed rows ran it (schema version 3, tests/data/v3): every field
    of its rows is still there with its type, and what is new is exactly what versions 4, 5 and 7 add."""
    _, workdir = study
    before = json.loads((REPO / "tests" / "data" / "v3" / "torch-cpu-fp32-32-real-bs2.json").read_text())
    after = json.loads((workdir / "artifacts" / "results" / HOST / "torch" / "cpu-fp32" / "32" /
                        "real-bs2.json").read_text())
    changing = ("/measurement/", "/busiest_others[]/")  # new settings; other processes seen (or not) on this run
    new = {path for path in _key_paths(after) - _key_paths(before) if not path.startswith("/schema_version")}
    assert ({path for path in new if not path.startswith(changing) and "/busiest_others[]" not in path}
            == ADDED_IN_4 | ADDED_IN_5 | ADDED_IN_7)
    assert {path for path in _key_paths(before) - _key_paths(after) if "/busiest_others[]/" not in path} == set()
    assert {path for path in new if path.startswith("/measurement/")} >= {"/measurement/unstable_spread:float",
                                                                          "/measurement/noisy_iqr_ratio:float"}
    columns = (REPO / "tests" / "data" / "v3" / "results-columns.csv").read_text().strip().split(",")
    now = (workdir / "report" / "results.csv").read_text().splitlines()[0].split(",")
    assert [column for column in now if column in columns] == columns, "every column of version 3, in its order"
    assert set(now) - set(columns) == COLUMNS_ADDED_IN_4 | COLUMNS_ADDED_SINCE_4


def test_snakemake_html_report_registers_plots_and_tables_by_image_size_and_format(study):
    repo, workdir = study
    html_report = workdir / "report" / "report.html"
    out = snakemake(repo, workdir, "--report", str(html_report), cores=None)  # as README gives it: no --cores
    text = html_report.read_text()
    categories = json.loads(re.search(r"var categories = (\{.*?\});\s*</script>", text, re.S).group(1))
    assert set(categories) == {"32×32", "64×64", "All image sizes"}
    for size in (32, 64):
        assert categories[f"{size}×{size}"] == {
            "All formats": [f"report/plots/{HOST}/end_to_end_{size}_{HOST}.png",
                            f"report/plots/{HOST}/throughput_{size}_{HOST}.png"],
            **{fmt: [f"report/tables/{size}/{fmt}/{fmt}_{size}_{HOST}.html"]
               for fmt in ("torch", "onnx", "torchscript")}}
    assert sorted(categories["All image sizes"]["All formats"]) == [
        f"report/plots/{HOST}/{name}_{HOST}.png" for name in ("fastest", "memory", "speedup")] + ["report/results.csv"]
    added = re.findall(r"^Adding (\S+) ", out.stdout + out.stderr, re.M)
    assert len(added) == len(set(added)) == 2 * 5 + 3 + 1, "every item of the HTML report has its own name"
    # The random init is said on the front page and in every item's labels, as in report.md; the front page says
    # what ran here and what it found, not the default grid's formats (torch_trt had no GPU here).
    assert "Random weights." in text and "not ImageNet accuracy" in text
    front = text.split("<strong>Measured</strong>")[1].split("<strong>Findings</strong>")[0]
    assert "torchscript" in front and "torch_trt" not in front and "fp16" not in front, front
    assert text.count("random weights: random init (seed 0)") >= len(added)


def test_the_html_report_renders_in_a_browser_without_script_errors(study):
    """Headless Chromium opens `snakemake --report`'s page as a reader would: the front page with the random-weights
    warning and the formats, one results table and one plot render, and no script error reaches the console."""
    import browser
    if browser.chromium() is None:
        pytest.skip("chromium is not installed (Debian: apt-get install chromium): the HTML report was not opened "
                    "in a browser")
    repo, workdir = study
    html_report = workdir / "report" / "browser.html"
    snakemake(repo, workdir, "--report", str(html_report), cores=None)
    shots = workdir / "browser"
    shots.mkdir(exist_ok=True)
    copy = browser.instrumented(html_report, shots)

    front = browser.open_view(copy, shots / "front.png")
    assert front.get("errors") == [] and front["console"] == [], front
    assert "Random weights." in front["text"] and "not ImageNet accuracy" in front["text"]
    # What ran, the answer and the findings (report/front.rst); not the formats of the default grid that did not run
    assert "In short" in front["text"] and "Findings" in front["text"], front["text"]
    assert "ONNX Runtime fp32 on cpu" in front["text"] and "torch.compile" not in front["text"]
    assert all(category in front["text"] for category in ("32×32", "64×64", "All image sizes"))

    table = f"report/tables/32/torch/torch_32_{HOST}.html"
    shown = browser.open_view(copy, shots / "table.png", view="table", path=table)
    assert shown.get("errors") == [] and shown["console"] == [], shown
    assert shown["shown"] and shown["shows_item"] and shown["box"][2] > 600 and shown["box"][3] > 300, shown
    # The table's own page is drawn in the frame (a blank frame has no dark pixel): its header, rows, warning.
    assert browser.dark_pixels(shots / "table.png", shown["box"]) > 2000

    plot = f"report/plots/{HOST}/end_to_end_32_{HOST}.png"
    drawn = browser.open_view(copy, shots / "plot.png", view="plot", path=plot)
    assert drawn.get("errors") == [] and drawn["console"] == [], drawn
    assert drawn["shown"] and drawn["shows_item"] and drawn["complete"] and drawn["natural_width"] > 400, drawn
    print(f"browser screenshots: {shots}")


