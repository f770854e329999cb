"""The real workflow through Snakemake, in a temporary directory, on a tiny CPU study: what a later run reruns (a
library upgrade, a GPU appearing, code edits, damaged or deleted files, another machine's results) and an
interrupted run resumed with the plain command."""
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from fixtures import write_results
from helpers_workflow import HOST, REPORT, benchmark, export_job, planned_jobs, result_paths, snakemake, tiny_config

from fmtbench import results

pytestmark = pytest.mark.workflow


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
    assert "fmtbench.workflow.plan" in imported, "the import trace was not read"
    heavy = {"torch", "torchvision", "onnx", "onnxruntime", "matplotlib"}
    assert not heavy & imported, sorted(heavy & imported)
    # of the measurement, only what else used the machine (the study's start warns of it)
    measurement = {name for name in imported if name.startswith("fmtbench.measure")}
    assert measurement <= {"fmtbench.measure", "fmtbench.measure.contention", "fmtbench.measure.procinfo"}, measurement
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
    timing = repo / "fmtbench" / "measure" / "timing.py"
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
