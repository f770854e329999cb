"""The result files a report reads are checked before it renders (fmtbench.report.result_files): another version's, a
damaged one, another machine's under this machine's label are refused naming the file; the previous report stays."""
import json
import shutil
from pathlib import Path

import pytest
from fixtures import model_provenance, write_results

from fmtbench import results
from fmtbench.atomic import replaced_together
from fmtbench.report import render, result_files

BASELINE = {"format": "torch", "precision": "fp32"}


def _edit(path: str, change) -> None:
    record = json.loads(Path(path).read_text())
    change(record)
    Path(path).write_text(json.dumps(record))


def _pick(paths, host="gpu-box", fmt="torch", device="cuda", status_ok=True):
    for path in paths:
        record = json.loads(Path(path).read_text())
        config = record["config"]
        if (config["host"], config["format"], config["device"]) == (host, fmt, device) \
                and (record["status"] == "ok") == status_ok:
            return path
    raise AssertionError("no such fixture row")


@pytest.mark.parametrize("change, why", [
    (lambda r: r.update(schema_version=results.SCHEMA_VERSION + 1, quantiles={"p999": 1.0}),
     "written by a newer fmtbench (schema_version 9; this one reads 8): update fmtbench here, or delete the file"),
    (lambda r: r.pop("timing"), "not a complete result (schema_version 8): 'timing' is a required property"),
    (lambda r: r.update(timing=None), "not a complete result (schema_version 8): timing: None is not of type 'object'"),
    (lambda r: r.pop("environment"), "not a complete result (schema_version 8): 'environment' is a required property"),
    (lambda r: r["config"].pop("image_size"), "(schema_version 8): config: 'image_size' is a required property"),
    (lambda r: r["environment"].pop("cudnn"), "environment: 'cudnn' is a required property"),  # a CUDA row's Setup
    (lambda r: r.pop("schema_version"), "schema_version None is not one this fmtbench reads (3, 4, 5, 6, 7, 8)"),
    (lambda r: r.update(schema_version="8"), "schema_version '8' is not one this fmtbench reads (3, 4, 5, 6, 7, 8)"),
])
def test_a_result_this_version_cannot_read_is_refused_naming_the_file(tmp_path, change, why):
    paths = write_results(tmp_path)
    bad = _pick(paths)
    _edit(bad, change)
    with pytest.raises(result_files.RefusedInput) as error:
        result_files.read(paths)
    first, *_, last = str(error.value).splitlines()
    assert first.startswith(f"{bad}: ") and why in first, first
    assert last.startswith("report: 1 result file(s) refused, the report is not made (the previous one stays")


def test_a_cut_short_file_is_refused_naming_it(tmp_path):
    paths = write_results(tmp_path)
    Path(paths[3]).write_text(Path(paths[3]).read_text()[:200])
    with pytest.raises(result_files.RefusedInput, match=rf"^{paths[3]}: not a readable result \(JSONDecodeError: "):
        result_files.read(paths)


def test_the_shipped_fixture_and_an_unmeasured_row_without_figures_are_read():
    """An `ok` row needs its figures; a row that was not measured has none, as the runner writes it."""
    assert result_files.problem({**json.loads(json.dumps(_unavailable())), "timing": None}) is None


def _unavailable():
    from fixtures import ENVIRONMENTS

    from fmtbench import results
    config = results.Config(format="torch", precision="fp16", device="cuda", loader="dummy", image_size=32,
                            batch_size=4, host="cpu-box")
    return results.failure(config, "unavailable", "no CUDA device on this machine",
                           environment=ENVIRONMENTS["cpu-box"]).to_json()


def test_another_machines_rows_under_this_label_are_refused_naming_them(tmp_path):
    """Copied into this machine's folder (one of them over this machine's own file): other CPU model, 4x faster."""
    paths = write_results(tmp_path)
    copied = [path for path in paths if "/cpu-box/onnx/cpu-fp32/32/" in path]
    for path in copied:
        _edit(path, lambda r: r["environment"].update(cpu_model="Other CPU 64C", hostname="elsewhere"))
    with pytest.raises(result_files.RefusedInput) as error:
        result_files.read(paths)
    lines = str(error.value).splitlines()
    assert lines[:-1] == [f"{path}: filed under `cpu-box` but measured on CPU 'Other CPU 64C'; its other 12 CPU rows "
                          "there on 'Test CPU 8C'" for path in sorted(copied)], lines
    assert "move another machine's files to a folder of their own under artifacts/results/" in lines[-1]


def test_a_folder_names_its_machine_and_cuda_rows_may_run_on_other_nodes_cpus(tmp_path):
    """Moved to a folder of their own, the other machine's rows are its own machine in the report (their JSONs still
    say the label they were measured under); CUDA rows whose nodes have another CPU than the CPU rows' (a SLURM
    study with a CPU partition) are one machine: a CUDA row's hardware is its GPU."""
    paths = write_results(tmp_path)
    moved = []
    for path in [p for p in paths if "/cpu-box/onnx/cpu-fp32/32/" in p]:
        _edit(path, lambda r: r["environment"].update(cpu_model="Other CPU 64C"))
        target = Path(path.replace("/cpu-box/", "/other-box/"))
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(path, target)
        moved.append(str(target))
    paths = [p for p in paths if "/cpu-box/onnx/cpu-fp32/32/" not in p] + moved
    for path in [p for p in paths if "/gpu-box/" in p and "/cuda-" in p]:
        _edit(path, lambda r: r["environment"].update(cpu_model="GPU node CPU"))
    records = result_files.read(paths)
    assert {records[p]["config"]["host"] for p in moved} == {"other-box"}
    report = tmp_path / "report" / "report.md"
    render.render(paths, model_provenance(tmp_path), report, BASELINE)
    assert "## Results on `other-box`" in report.read_text() and "on 3 machine(s)" in report.read_text()


def test_a_refused_input_leaves_the_previous_report_as_it_was(tmp_path):
    paths = write_results(tmp_path)
    outputs = [tmp_path / "report" / name for name in ("plots", "tables", "results.csv", "report.md")]
    with replaced_together(*outputs) as (plots, tables, csv, report):
        render.render(paths, model_provenance(tmp_path), report, BASELINE, tables_dir=tables,
                      results_csv=csv)
    before = {p: p.read_bytes() for p in (tmp_path / "report").rglob("*") if p.is_file()}
    assert len(before) > 20
    _edit(paths[0], lambda r: r.update(schema_version=results.SCHEMA_VERSION + 1))
    with pytest.raises(result_files.RefusedInput):
        with replaced_together(*outputs) as (plots, tables, csv, report):
            render.render(paths, model_provenance(tmp_path), report, BASELINE, tables_dir=tables,
                          results_csv=csv)
    assert {p: p.read_bytes() for p in (tmp_path / "report").rglob("*") if p.is_file()} == before


def test_a_new_report_replaces_the_previous_whole_and_a_failed_one_replaces_nothing(tmp_path):
    old = tmp_path / "report"
    (old / "plots" / "gone-host").mkdir(parents=True)
    (old / "plots" / "gone-host" / "a.png").write_bytes(b"old plot")
    (old / "report.md").write_text("old report")
    with pytest.raises(RuntimeError):
        with replaced_together(old / "plots", old / "report.md") as (plots, report):
            plots.mkdir()
            (plots / "b.png").write_bytes(b"new plot")
            raise RuntimeError("the renderer failed half-way")
    assert (old / "report.md").read_text() == "old report" and (old / "plots/gone-host/a.png").exists()
    with replaced_together(old / "plots", old / "report.md") as (plots, report):
        plots.mkdir()
        (plots / "b.png").write_bytes(b"new plot")
        report.write_text("new report")
    assert sorted(p.relative_to(old).as_posix() for p in old.rglob("*")) == ["plots", "plots/b.png", "report.md"]
    assert (old / "report.md").read_text() == "new report"
