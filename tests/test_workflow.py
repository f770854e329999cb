"""The real workflow through Snakemake, in a temporary directory, on a tiny CPU study."""
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from fixtures import write_results

from fmtbench import results

pytestmark = pytest.mark.workflow
REPO = Path(__file__).resolve().parent.parent
HOST = "testhost"


def snakemake(repo, workdir, *args, env=None, check=True, target="report", cores="2", configfile=None):
    command = [sys.executable, "-m", "snakemake", "-s", str(repo / "Snakefile"), "-d", str(workdir), target,
               "--configfile", str(configfile or repo / "tests" / "data" / "tiny_config.yaml"),
               *(["--cores", cores] if cores else []), *args]
    completed = subprocess.run(command, capture_output=True, text=True, env={**os.environ, **(env or {})})
    if check and completed.returncode != 0:
        raise AssertionError(f"snakemake failed:\n{completed.stdout[-4000:]}\n{completed.stderr[-4000:]}")
    return completed


def planned_jobs(repo, workdir, env=None, configfile=None) -> set[tuple]:
    """(rule, wildcards...) of every job a dry run would run."""
    out = snakemake(repo, workdir, "-n", env=env, configfile=configfile)
    text = out.stdout + out.stderr
    jobs = set()
    for block in re.split(r"\n(?=(?:local)?rule \w+:)", text):
        header = re.match(r"(?:local)?rule (\w+):", block.strip())
        if not header:
            continue
        wildcards = re.search(r"wildcards: (.*)", block)
        pairs = tuple(sorted(wildcards.group(1).split(", "))) if wildcards else ()
        jobs.add((header.group(1), *pairs))
    return jobs


def benchmark(fmt, device, precision, size=None):
    """The job of a (format, device, precision): one for every image size (`size` names the one a test means)."""
    rule = "benchmark_cuda" if device == "cuda" else "benchmark"
    return (rule, f"device={device}", f"format={fmt}", f"host={HOST}", f"precision={precision}")


def export_job(fmt, precision, device, size, ext):
    return ("export", f"device={device}", f"ext={ext}", f"format={fmt}", f"precision={precision}", f"size={size}")


REPORT = ("report",)


def _generated(directory, names):
    """What a copy of the workflow leaves out: generated files, never package code."""
    everywhere = {n for n in names if n in {"__pycache__", ".pytest_cache"} or n.endswith(".egg-info")}
    top_level = {".git", ".venv", "artifacts", "report", ".snakemake"} if Path(directory) == REPO else set()
    return everywhere | (top_level & set(names))


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    """A copy of the workflow and a workdir in which the tiny study has run once."""
    root = tmp_path_factory.mktemp("study")
    repo = root / "repo"
    shutil.copytree(REPO, repo, ignore=_generated)
    workdir = root / "work"
    workdir.mkdir()
    started = time.perf_counter()
    out = snakemake(repo, workdir)
    print(f"tiny study: {time.perf_counter() - started:.1f} s")
    (workdir / "first-run.out").write_text(out.stdout + out.stderr)
    return repo, workdir


def result_paths(workdir):
    return sorted((workdir / "artifacts" / "results" / HOST).rglob("*.json"))


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
# ... and its CSV: host-bound rows and the GPU time behind them, the processes' range of rates and of memory, the
# first call's and the overall memory peak (`memory_mb` is the steady state now), the capacity check, others
# anywhere, and the marks a speedup's baseline carries.
COLUMNS_ADDED_IN_4 = {"throughput_min_fps", "throughput_max_fps", "gpu_busy_share", "host_bound", "gpu_ms",
                      "e2e_above_capacity", "memory_min_mb", "memory_max_mb", "memory_disagree", "memory_first_call_mb",
                      "memory_peak_mb", "others_elsewhere_share_max", "baseline_contended", "baseline_host_bound"}
# ... and since: a real-loader row's verdict and end-to-end / capacity, where the memory figure came from, the
# stream ONNX Runtime ran on, which figure a speedup took (and the baseline's device time), a GPU-decode row's
# loader share.
COLUMNS_ADDED_SINCE_4 = {"e2e_bound", "e2e_over_capacity", "memory_chosen_from", "compute_stream", "speedup_basis",
                         "baseline_gpu_ms", "loader_memory_mb"}


def test_the_rows_and_the_csv_keep_every_field_the_previous_version_wrote(study):
    """The same tiny study as the code before the typed rows ran it (schema version 3, tests/data/v3): every field
    of its rows is still there with its type, and what is new is exactly what versions 4 and 5 add."""
    _, workdir = study
    before = json.loads((REPO / "tests" / "data" / "v3" / "torch-cpu-fp32-32-real-bs2.json").read_text())
    after = json.loads((workdir / "artifacts" / "results" / HOST / "torch" / "cpu-fp32" / "32" /
                        "real-bs2.json").read_text())
    changing = ("/measurement/", "/busiest_others[]/")  # new settings; other processes seen (or not) on this run
    new = {path for path in _key_paths(after) - _key_paths(before) if not path.startswith("/schema_version")}
    assert ({path for path in new if not path.startswith(changing) and "/busiest_others[]" not in path}
            == ADDED_IN_4 | ADDED_IN_5)
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


def test_second_run_does_nothing_and_starts_light(study):
    """What keeps a no-op rerun at Snakemake's own start-up cost, asserted as behaviour rather than a wall-clock bound
    (which measured the machine: 1.4 s here, 3.4 s on CI's runner with the SLURM plugin): the Snakefile imports no
    framework, and every code hash comes from the parses the first run kept (the cache is not rewritten)."""
    repo, workdir = study
    cache = workdir / ".snakemake" / "fmtbench-code.json"
    assert cache.is_file(), "the first run kept its code hashes' parses"
    kept = cache.stat().st_mtime_ns, cache.read_bytes()
    out = snakemake(repo, workdir, env={"PYTHONPROFILEIMPORTTIME": "1"})
    assert "Nothing to be done" in out.stdout + out.stderr
    imported = {line.rsplit("|", 1)[-1].strip() for line in out.stderr.splitlines() if line.startswith("import time:")}
    assert "fmtbench.study" in imported, "the import trace was not read"
    heavy = {"torch", "torchvision", "onnx", "onnxruntime", "matplotlib", "fmtbench.measure"}
    assert not heavy & imported, sorted(heavy & imported)
    assert (cache.stat().st_mtime_ns, cache.read_bytes()) == kept, "a no-op run parsed code again"


def test_onnxruntime_upgrade_reruns_exactly_onnx(study):
    repo, workdir = study
    jobs = planned_jobs(repo, workdir, env={"FMTBENCH_VERSION_OVERRIDES": "onnxruntime=99.0.0"})
    assert jobs == {export_job("onnx", "fp32", "any", 32, "onnx"), export_job("onnx", "fp32", "any", 64, "onnx"),
                    benchmark("onnx", "cpu", "fp32", 32), benchmark("onnx", "cpu", "fp32", 64), REPORT}


def test_torch_tensorrt_upgrade_reruns_exactly_torch_trt(study):
    repo, workdir = study
    jobs = planned_jobs(repo, workdir, env={"FMTBENCH_VERSION_OVERRIDES": "torch_tensorrt=2.14.0"})
    # no GPU here: the rows are rewritten (their library changed), their engines are not built
    assert jobs == {benchmark("torch_trt", "cuda", "fp16", 32), benchmark("torch_trt", "cuda", "fp16", 64), REPORT}


def test_gpu_appearing_reruns_exactly_the_cuda_rows(study):
    repo, workdir = study
    jobs = planned_jobs(repo, workdir, env={"FMTBENCH_GPU_FINGERPRINT": "NVIDIA H100 80GB HBM3"})
    assert jobs == {export_job("torch_trt", "fp16", "cuda", 32, "ep"),
                    export_job("torch_trt", "fp16", "cuda", 64, "ep"),
                    benchmark("torch_trt", "cuda", "fp16", 32), benchmark("torch_trt", "cuda", "fp16", 64),
                    benchmark("torch", "cuda", "fp16", 32), benchmark("torch", "cuda", "fp16", 64), REPORT}


def _edit(path: Path, line: str):
    original = path.read_text()
    path.write_text(original + line)
    return original


def _edit_docstrings_and_comments(path: Path) -> str:
    """Every docstring of a module reworded, a comment and a blank line added: its code unchanged."""
    import ast
    original = path.read_text(encoding="utf-8")
    lines = original.encode().splitlines(keepends=True)
    documented = (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)
    docstrings = [node.body[0].value for node in ast.walk(ast.parse(original)) if isinstance(node, documented)
                  and node.body and isinstance(node.body[0], ast.Expr) and isinstance(node.body[0].value, ast.Constant)
                  and isinstance(node.body[0].value.value, str)]
    for string in sorted(docstrings, key=lambda node: (node.end_lineno, node.end_col_offset), reverse=True):
        line = lines[string.end_lineno - 1]  # positions are in UTF-8 bytes
        quotes = 3 if line[:string.end_col_offset].endswith((b'"""', b"'''")) else 1
        at = string.end_col_offset - quotes
        lines[string.end_lineno - 1] = line[:at] + b" Reworded." + line[at:]
    path.write_bytes(b"# a comment\n\n" + b"".join(lines) + b"\n# another comment\n")
    return original


def test_docstring_and_comment_edits_anywhere_in_the_package_rerun_nothing(study):
    repo, workdir = study
    modules = sorted((repo / "fmtbench").rglob("*.py"))
    originals = {}
    try:
        for path in modules:
            originals[path] = _edit_docstrings_and_comments(path)
        assert all("Reworded." in path.read_text() for path in modules)
        assert planned_jobs(repo, workdir) == set()
    finally:
        for path, text in originals.items():
            path.write_text(text, encoding="utf-8")


def test_timing_code_edit_reruns_every_benchmark_and_the_report_no_export(study):
    repo, workdir = study
    timing = repo / "fmtbench" / "timing.py"
    original = _edit(timing, "\n_A_TIMING_CHANGE = 1\n")
    try:
        assert planned_jobs(repo, workdir) == {
            *(benchmark(fmt, "cpu", "fp32", size) for fmt in ("torch", "onnx", "torchscript") for size in (32, 64)),
            *(benchmark(fmt, "cuda", "fp16", size) for fmt in ("torch", "torch_trt") for size in (32, 64)), REPORT}
    finally:
        timing.write_text(original)


def test_report_code_edit_rebuilds_only_the_report(study):
    repo, workdir = study
    renderer = repo / "fmtbench" / "report" / "render.py"
    original = _edit(renderer, "\n_A_REPORT_CHANGE = 1\n")
    try:
        assert planned_jobs(repo, workdir) == {REPORT}
    finally:
        renderer.write_text(original)
    assert planned_jobs(repo, workdir) == set()


def test_backend_code_edit_reruns_that_backend_only(study):
    repo, workdir = study
    backend = repo / "fmtbench" / "backends" / "torchscript.py"
    original = _edit(backend, "\n_A_BACKEND_CHANGE = 1\n")
    try:
        assert planned_jobs(repo, workdir) == {export_job("torchscript", "fp32", "cpu", "any", "ts"),
                                               benchmark("torchscript", "cpu", "fp32", 32),
                                               benchmark("torchscript", "cpu", "fp32", 64), REPORT}
    finally:
        backend.write_text(original)


def test_deleted_report_is_rebuilt_from_cached_jsons(study):
    repo, workdir = study
    before = {p: p.stat().st_mtime_ns for p in result_paths(workdir)}
    shutil.rmtree(workdir / "report")
    assert planned_jobs(repo, workdir) == {REPORT}
    snakemake(repo, workdir)
    assert (workdir / "report" / "report.md").exists()
    assert {p: p.stat().st_mtime_ns for p in result_paths(workdir)} == before


def test_results_of_another_machine_join_the_report_without_reruns(study):
    repo, workdir = study
    write_results(workdir, hosts=("gpu-box",))
    try:
        assert planned_jobs(repo, workdir) == {REPORT}
        snakemake(repo, workdir)
        report = (workdir / "report" / "report.md").read_text()
        assert "## Results on `gpu-box`" in report and "## Across machines" in report
    finally:
        shutil.rmtree(workdir / "artifacts" / "results" / "gpu-box")
        snakemake(repo, workdir)


def _mtimes(paths):
    return {p: p.stat().st_mtime_ns for p in paths}


def test_damaged_or_deleted_files_are_remade_and_exactly_what_used_them_reruns(study):
    """A truncated export, a deleted export, a corrupt reference and a corrupt result: the plain command sets
    the damaged ones aside, remakes them and reruns exactly their dependants. A benchmark job covers every image
    size of its format (its imports paid once), so a damaged file reruns its whole job: here every job, since
    each reads the reference logits of every size."""
    repo, workdir = study
    art = workdir / "artifacts"
    onnx32 = art / "exports" / "onnx" / "fp32-any-32.onnx"
    onnx32.write_bytes(onnx32.read_bytes()[:1000])
    (art / "exports" / "torchscript" / "fp32-cpu-any.ts").unlink()
    (art / "reference" / "64.pt").write_bytes(b"not a torch file")
    corrupt = art / "results" / HOST / "torch" / "cpu-fp32" / "64" / "real-bs2.json"
    corrupt.write_text('{"schema_version": 2, "config": {')
    before = _mtimes(result_paths(workdir))

    assert planned_jobs(repo, workdir) == {
        export_job("onnx", "fp32", "any", 32, "onnx"), export_job("torchscript", "fp32", "cpu", "any", "ts"),
        ("reference", "size=64"),
        benchmark("onnx", "cpu", "fp32", 32), benchmark("onnx", "cpu", "fp32", 64),
        benchmark("torchscript", "cpu", "fp32", 32), benchmark("torchscript", "cpu", "fp32", 64),
        benchmark("torch", "cpu", "fp32", 64), benchmark("torch", "cuda", "fp16", 64),
        benchmark("torch_trt", "cuda", "fp16", 64), REPORT}
    assert onnx32.stat().st_size == 1000 and not (art / "exports" / "onnx" / "fp32-any-32.onnx.damaged").exists(), \
        "a dry run sets nothing aside"
    out = snakemake(repo, workdir)
    assert "fp32-any-32.onnx: 1000 bytes, the export wrote" in out.stderr and "remade in this run" in out.stderr
    assert (art / "exports" / "onnx" / "fp32-any-32.onnx.damaged").exists(), "kept for a post-mortem"
    assert planned_jobs(repo, workdir) == set()
    for path in result_paths(workdir):
        result = json.loads(path.read_text())
        assert result["status"] in ("ok", "unavailable"), (path, result["reason"])
    assert all(after != before[path] for path, after in _mtimes(result_paths(workdir)).items()), "every job reran"


def test_a_killed_measurement_is_remeasured_by_the_next_plain_runs_a_bounded_number_of_times(study):
    repo, workdir = study
    path = workdir / "artifacts" / "results" / HOST / "onnx" / "cpu-fp32" / "32" / "dummy-bs2.json"
    good = json.loads(path.read_text())
    killed = {**good, "status": "failed", "transient": True, "attempt": 1, "timing": None, "throughput": None,
              "reason": "the measuring process died (SIGKILL) during stage 'timing_start'"}
    path.write_text(json.dumps(killed))
    assert planned_jobs(repo, workdir) == {benchmark("onnx", "cpu", "fp32", 32), REPORT}
    snakemake(repo, workdir)
    again = json.loads(path.read_text())
    assert again["status"] == "ok" and again["attempt"] == 2
    assert not path.with_name(path.name + ".previous").exists()
    path.write_text(json.dumps({**killed, "attempt": 3}))  # tried often enough: it stays (the report redraws)
    try:
        assert planned_jobs(repo, workdir) == {REPORT}
    finally:
        path.write_text(json.dumps(again))
        snakemake(repo, workdir)


def test_a_damaged_result_of_another_machine_stops_the_run_naming_it_and_keeps_the_report(study):
    repo, workdir = study
    write_results(workdir, hosts=("gpu-box",))
    foreign = sorted((workdir / "artifacts" / "results" / "gpu-box").rglob("*.json"))[0]
    foreign.write_text("{")
    report = workdir / "report" / "report.md"
    before = report.stat().st_mtime_ns
    try:
        out = snakemake(repo, workdir, check=False)
        assert out.returncode != 0
        assert f"{foreign.relative_to(workdir)}: not a readable result" in out.stderr
        assert "copy it again from that machine, or delete it" in out.stderr
        assert report.stat().st_mtime_ns == before
    finally:
        shutil.rmtree(workdir / "artifacts" / "results" / "gpu-box")
    assert planned_jobs(repo, workdir) == set()


def test_a_result_of_another_version_is_refused_by_the_report_naming_it_and_the_report_stays(study):
    """Readable, so the run goes on (another machine's file is only read by the report); the report job refuses it
    in one line and Snakemake keeps the previous report (its outputs are update()d)."""
    repo, workdir = study
    write_results(workdir, hosts=("gpu-box",))
    newer = sorted((workdir / "artifacts" / "results" / "gpu-box").rglob("*.json"))[0]
    version = results.SCHEMA_VERSION + 1
    newer.write_text(json.dumps({**json.loads(newer.read_text()), "schema_version": version, "quantiles": {}}))
    before = {p: p.read_bytes() for p in (workdir / "report").rglob("*") if p.is_file() and p.name != ".complete"}
    try:
        out = snakemake(repo, workdir, check=False)
        assert out.returncode != 0
        said = (f"ERROR fmtbench: rule report: {newer.relative_to(workdir)}: written by a newer fmtbench "
                f"(schema_version {version}; this one reads {results.SCHEMA_VERSION})")
        assert said in out.stderr, out.stderr[-3000:]
        assert "Traceback" not in out.stderr.split("Error in rule report")[0], out.stderr[-3000:]
        after = {p: p.read_bytes() for p in (workdir / "report").rglob("*") if p.is_file() and p.name != ".complete"}
        assert after == before, "the previous report, plots, tables and CSV as they were"
    finally:
        shutil.rmtree(workdir / "artifacts" / "results" / "gpu-box")
    snakemake(repo, workdir)
    assert planned_jobs(repo, workdir) == set()


def tiny_config(path: Path, cpu_min_seconds: float | None = None, **changes) -> Path:
    """The tiny study's config with top-level `changes` (and CPU rows timed for at least `cpu_min_seconds`),
    written to `path`."""
    import yaml
    config = yaml.safe_load((REPO / "tests" / "data" / "tiny_config.yaml").read_text())
    config.update(changes)
    if cpu_min_seconds is not None:
        config["measurement"]["cpu"]["min_seconds"] = cpu_min_seconds
    path.write_text(yaml.safe_dump(config))
    return path


def _slow_config(workdir):
    """The tiny study with CPU rows that time for 3 s: an interrupt lands while a child measures (the tiny
    study's own rows end in a fraction of a second, and a Ctrl-C after the last one came too late)."""
    return tiny_config(workdir / "slow_config.yaml", cpu_min_seconds=3)


def _interrupt_during_onnx_benchmark(repo, workdir, env, interrupt, configfile):
    command = [sys.executable, "-m", "snakemake", "-s", str(repo / "Snakefile"), "-d", str(workdir),
               "--configfile", str(configfile), "--cores", "1", "report"]
    log = workdir / "artifacts" / "logs" / "benchmark" / HOST / "onnx-cpu-fp32.log"
    log.unlink(missing_ok=True)
    output = workdir / f"interrupted-{interrupt.__name__}.out"
    with output.open("w") as sink:
        # A terminal's Ctrl-C reaches a process whose SIGINT is at its default; a test runner started in the
        # background (`cmd &` in a script) inherits SIGINT ignored, and so would Snakemake and its jobs.
        process = subprocess.Popen(command, env={**os.environ, **env}, start_new_session=True,
                                   stdout=sink, stderr=subprocess.STDOUT,
                                   preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.time() + 120
    while time.time() < deadline and not (log.exists() and "measuring" in log.read_text()):
        time.sleep(0.02)
    interrupt(process)
    assert process.wait(timeout=120) != 0, output.read_text()[-3000:]
    return output.read_text()


def _ctrl_c(process):
    """What a terminal sends to the whole foreground group, pressed again while Snakemake keeps running, as a
    user would: one run in about ten was seen to finish with exit code 0 after a single SIGINT."""
    deadline = time.time() + 60
    while process.poll() is None and time.time() < deadline:
        os.killpg(process.pid, signal.SIGINT)
        try:
            process.wait(timeout=5)  # a user waits a moment before pressing again
        except subprocess.TimeoutExpired:
            pass


def _kill_the_job(process):
    import psutil
    jobs = [p for p in psutil.Process(process.pid).children(recursive=True)
            if any("benchmark" in part for part in p.cmdline())]
    assert jobs, "the benchmark job was not running"
    for job in jobs:
        job.kill()


@pytest.mark.parametrize("interrupt", [_ctrl_c, _kill_the_job], ids=["ctrl-c", "killed-job"])
def test_interrupted_run_resumes_with_the_plain_command(study, interrupt):
    repo, workdir = study
    env = {"FMTBENCH_VERSION_OVERRIDES": f"onnxruntime=98.{interrupt.__name__}"}
    slow = _slow_config(workdir)
    console = _interrupt_during_onnx_benchmark(repo, workdir, env, interrupt, slow)
    if interrupt is _ctrl_c:  # every process of the job got it: one calm line, no traceback from any of them
        # (Snakemake's own main process may print one when a second Ctrl-C lands in its shutdown: upstream, and
        # not a job's; every frame of such a traceback is in Snakemake or the standard library)
        ours = [block for block in console.split("Traceback (most recent call last):")[1:]
                if "fmtbench" in block or ".snakemake/scripts" in block]
        assert not ours, ours[0][-3000:]
        assert "rule benchmark interrupted (Ctrl-C): stopped, nothing half-written left" in console, console[-3000:]
    for path in result_paths(workdir):
        results.validate(json.loads(path.read_text()))  # never a half-written JSON
    assert not list((workdir / "artifacts").rglob("*.part*"))
    snakemake(repo, workdir, env=env, configfile=slow)  # the plain command, no flag
    assert planned_jobs(repo, workdir, env=env, configfile=slow) == set()
    for path in result_paths(workdir):
        results.validate(json.loads(path.read_text()))


def test_a_study_with_nothing_to_measure_is_refused_before_any_job(tmp_path):
    config = tiny_config(tmp_path / "config.yaml", formats={"torch": {"cpu": ["fp32"]}, "onnx": {"cpu": ["fp32"]}},
                         loaders=["real_gpu_decode"])
    out = snakemake(REPO, tmp_path / "work", configfile=config, check=False)
    assert out.returncode != 0 and "loaders: no configured loader runs on any configured device" in out.stderr
    assert not (tmp_path / "work" / "artifacts").exists()


def test_a_folder_of_8_and_16_bit_images_is_measured_with_right_inputs(tmp_path):
    import numpy as np
    from PIL import Image
    folder = tmp_path / "photos"
    folder.mkdir()
    y, x = np.mgrid[0:48, 0:64]
    grey = (x * 3 + y).astype(np.uint8)
    Image.fromarray(np.stack([grey] * 3, axis=-1)).save(folder / "a8.png")
    Image.fromarray(grey.astype(np.uint16) * 257).save(folder / "b16.png")
    config = tiny_config(tmp_path / "config.yaml", formats={"torch": {"cpu": ["fp32"]}}, image_sizes=[32],
                         loaders=["real"],
                         data={"images": str(folder), "num_images": 2, "seed": 0, "accuracy_images": 2})
    workdir = tmp_path / "work"
    snakemake(REPO, workdir, configfile=config)
    result = json.loads((workdir / "artifacts/results" / HOST / "torch/cpu-fp32/32/real-bs2.json").read_text())
    assert result["status"] == "ok", result["reason"]
    import torch
    reference = torch.load(workdir / "artifacts" / "reference" / "32.pt", map_location="cpu", weights_only=True)
    # The same picture at 8 and 16 bits: the same input, so the same logits (it was 257 times brighter).
    assert [Path(p).name for p in reference["images"]] == ["a8.png", "b16.png"]
    assert torch.allclose(reference["logits"][0], reference["logits"][1])


def test_invalid_config_stops_before_any_job(tmp_path):
    out = snakemake(REPO, tmp_path, "--config", "batch_sizes=[2, -8]", check=False)
    assert out.returncode != 0
    assert "-8" in out.stderr and "batch_sizes" in out.stderr
    assert not (tmp_path / "artifacts").exists()
    out = snakemake(REPO, tmp_path, "--config", "formats={tensorrt: {cuda: [fp16]}}", check=False)
    assert out.returncode != 0 and "formats.tensorrt: unknown format" in out.stderr
    out = snakemake(REPO, tmp_path, "--config", "measurement={cpu: {warmup_iters: 1, warmup_seconds: .inf, "
                    "min_iters: 1, min_seconds: 0, max_seconds: 1}}", check=False)
    assert out.returncode != 0
    assert "config: measurement.cpu.warmup_seconds: inf is not a finite number" in out.stderr.splitlines()
    assert not (tmp_path / "artifacts").exists()


def test_a_schema_error_is_one_line_naming_the_key_not_the_schema(tmp_path):
    import yaml
    config = yaml.safe_load((REPO / "tests" / "data" / "tiny_config.yaml").read_text())
    del config["image_sizes"]
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    out = snakemake(REPO, tmp_path / "work", configfile=tmp_path / "config.yaml", check=False)
    lines = out.stderr.splitlines()
    assert out.returncode != 0 and "config: 'image_sizes' is a required property" in lines
    assert lines.index("config: 'image_sizes' is a required property") <= 2, out.stderr
    assert len(lines) < 15, out.stderr  # it printed the whole schema and config: 265 lines
    assert not (tmp_path / "work" / "artifacts").exists()


def test_a_cpu_hog_beside_the_study_is_said_at_its_start_and_marks_its_rows(tmp_path):
    """Another process busy on the core the CPU rows are pinned to: the study warns when it starts, the rows'
    JSONs say `contended` and name the hog, the report marks their times § and counts them in its findings."""
    import pandas as pd
    config = tiny_config(tmp_path / "config.yaml", cpu_min_seconds=1.5, formats={"torch": {"cpu": ["fp32"]}},
                         image_sizes=[32], loaders=["dummy"])
    core = max(os.sched_getaffinity(0))  # CPU rows take the last of the usable cores (cpu_threads: 1)
    hog = subprocess.Popen([sys.executable, "-c", f"import os\nos.sched_setaffinity(0, {{{core}}})\nwhile True: pass"])
    try:
        out = snakemake(REPO, tmp_path / "work", configfile=config, cores="1")
    finally:
        hog.kill()
        hog.wait()
    assert "fmtbench: the machine is not quiet: other processes kept" in out.stderr
    result = json.loads((tmp_path / "work/artifacts/results" / HOST / "torch/cpu-fp32/32/dummy-bs2.json").read_text())
    assert result["status"] == "ok", result["reason"]
    assert result["contention"]["contended"] is True, result["contention"]
    assert result["contention"]["others_share_max"] > 0.3
    assert any(entry["pid"] == hog.pid for entry in result["contention"]["busiest_others"])
    assert result["processes"][0]["contention"]["cores"] == [core]
    report = (tmp_path / "work/report/report.md").read_text()
    row = next(line for line in report.splitlines() if re.match(r"\| torch +\| cpu +\| fp32 +\| 2 ", line))
    assert "§" in row.split("|")[5], row  # latency p50
    assert "1 of 1 configurations measured while other processes used the machine (marked §" in report
    assert pd.read_csv(tmp_path / "work/report/results.csv")["contended"].tolist() == [True]
