"""What reruns what: each stage's code is its script's import closure inside the package, hashed without
docstrings and comments (the workflow tests check the same through Snakemake's dry runs)."""
import ast
import re
import shutil
import textwrap
from pathlib import Path

import pytest

from fmtbench import backends
from fmtbench.workflow import triggers

FORMATS = list(backends.names())


def _modules(stage, format_name=None):
    return set(triggers.stage_modules(stage, format_name))


@pytest.mark.parametrize("format_name", FORMATS)
def test_a_per_format_stage_holds_its_own_backend_and_no_other(format_name):
    for stage in ("export", "benchmark"):
        modules = _modules(stage, format_name)
        assert f"fmtbench.backends.{format_name}" in modules
        others = {f"fmtbench.backends.{name}" for name in FORMATS if name != format_name}
        assert not modules & others, (stage, modules & others)


def test_each_stage_holds_what_it_runs_and_not_what_it_does_not():
    benchmark, export, report = _modules("benchmark", "torch"), _modules("export", "onnx"), _modules("report")
    assert {"fmtbench.measure.timing", "fmtbench.stats", "fmtbench.measure.job", "fmtbench.measure.measuring_process",
            "fmtbench.data", "fmtbench.data.sources", "fmtbench.measure.memory", "fmtbench.backends",
            "fmtbench.backends.base", "scripts/benchmark.py"} <= benchmark
    assert {"fmtbench.export", "fmtbench.isolation", "fmtbench.model", "scripts/export.py"} <= export
    assert not {"fmtbench.measure.timing", "fmtbench.measure", "fmtbench.stats", "fmtbench.workflow.plan"} & export
    assert {"fmtbench.report.render", "fmtbench.report.plots", "fmtbench.report.frame", "fmtbench.accuracy",
            "fmtbench.model"} <= report
    # the contract (math labels, format notes) it reads
    assert not {"fmtbench.measure.timing", "fmtbench.measure"} & report
    for stage in triggers.STAGE_SCRIPTS:  # the DAG's view is no stage's code
        dag = {"fmtbench.workflow.plan", "fmtbench.workflow.triggers"}
        assert not dag & _modules(stage, "torch" if stage == "benchmark" else None)


def test_static_imports_are_followed_in_functions_relative_and_through_packages(tmp_path, monkeypatch):
    package = tmp_path / "fmtbench"
    (package / "sub").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "sub" / "__init__.py").write_text("from . import helper\n")
    (package / "sub" / "helper.py").write_text("from ..leaf import VALUE\n")
    (package / "leaf.py").write_text("VALUE = 1\n")
    (package / "lazy.py").write_text("def f():\n    from fmtbench import leaf\n    return leaf\n")
    (package / "unused.py").write_text("X = 2\n")
    scripts = tmp_path / "scripts"
    scripts.mkdir()
    (scripts / "report.py").write_text("import fmtbench.sub.helper\nfrom fmtbench import lazy, not_a_module\n")
    monkeypatch.setattr(triggers, "PACKAGE_DIR", package)
    monkeypatch.setattr(triggers, "SCRIPTS_DIR", scripts)
    assert set(triggers.stage_modules("report")) == {
        "scripts/report.py", "fmtbench", "fmtbench.sub", "fmtbench.sub.helper", "fmtbench.leaf", "fmtbench.lazy"}


def _copy_package(tmp_path, monkeypatch) -> Path:
    package = tmp_path / "fmtbench"
    shutil.copytree(triggers.PACKAGE_DIR, package, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(triggers, "PACKAGE_DIR", package)
    return package


def test_docstrings_comments_and_layout_change_no_hash_code_does(tmp_path, monkeypatch):
    package = _copy_package(tmp_path, monkeypatch)
    before = {stage: triggers.code_hash(stage, "onnx" if stage in ("export", "benchmark") else None)
              for stage in triggers.STAGE_SCRIPTS}
    timing = package / "measure" / "timing.py"
    source = timing.read_text()
    docstring = ast.get_docstring(ast.parse(source), clean=False)
    timing.write_text("# a comment\n\n" + source.replace(docstring, docstring + " Reworded.") + "\n\n# the end\n")
    assert triggers.code_hash("benchmark", "onnx") == before["benchmark"]
    timing.write_text(source + "\nA_CHANGE = 1\n")
    assert triggers.code_hash("benchmark", "onnx") != before["benchmark"]
    for stage in ("model", "images", "reference", "export", "report"):
        assert triggers.code_hash(stage, "onnx" if stage == "export" else None) == before[stage], stage


def test_a_backends_helper_module_is_hashed_with_the_formats_that_import_it_and_no_other(tmp_path, monkeypatch):
    """A backend's helpers (`backends/_*.py`: onnx's ONNX Runtime sessions) are in its import closure: an edit to
    one reruns the formats whose backend imports it, and no other."""
    package = _copy_package(tmp_path, monkeypatch)
    _new_process(monkeypatch)
    assert "fmtbench.backends._ort_session" in _modules("export", "onnx") & _modules("benchmark", "onnx")
    before = {name: triggers.code_hash("benchmark", name) for name in FORMATS}
    helper = package / "backends" / "_ort_session.py"
    helper.write_text(helper.read_text() + "\nA_CHANGE = 1\n")
    after = {name: triggers.code_hash("benchmark", name) for name in FORMATS}
    assert {name for name in FORMATS if before[name] != after[name]} == {"onnx"}
    changed = [entry for entry in after["onnx"].split(", ") if entry not in before["onnx"].split(", ")]
    assert [entry.rsplit(":", 1)[0] for entry in changed] == ["backends._ort_session"]

def test_a_backend_from_outside_the_package_is_hashed_with_what_it_imports_from_the_package(tmp_path, monkeypatch):
    plugin = tmp_path / "plugins" / "extformats"
    plugin.mkdir(parents=True)
    (plugin / "__init__.py").write_text("")
    module = plugin / "ext_backend.py"
    code = textwrap.dedent('''
        """An outside backend."""
        from fmtbench.backends import _torchutil
        from fmtbench.backends.base import FormatSpec

        SPEC = FormatSpec(name="ext", label="Ext", libraries=("torch",), devices=("cpu",), precisions=("fp32",))


        def probe(device):
            return None


        def load(request):
            return _torchutil.input_format(request)
        ''')
    module.write_text(code)
    monkeypatch.syspath_prepend(str(tmp_path / "plugins"))
    monkeypatch.setenv(backends.MODULES_ENV, "")
    try:
        backends.use_modules(["extformats.ext_backend"])
        modules = triggers.stage_modules("benchmark", "ext")
        assert modules["extformats.ext_backend"] == module.resolve()
        assert {"fmtbench.backends._torchutil", "fmtbench.backends.base"} <= set(modules)
        before, torch_before = triggers.code_hash("benchmark", "ext"), triggers.code_hash("benchmark", "torch")
        module.write_text(code.replace('"""An outside backend."""', '"""An outside backend, reworded."""'))
        assert triggers.code_hash("benchmark", "ext") == before
        module.write_text(code + "A_CHANGE = 1\n")
        assert triggers.code_hash("benchmark", "ext") != before
        assert triggers.code_hash("benchmark", "torch") == torch_before
    finally:
        backends.use_modules([])



def _new_process(monkeypatch):
    """The module's state as a new Snakemake invocation finds it: nothing parsed in memory."""
    monkeypatch.setattr(triggers, "_parsed", {})
    monkeypatch.setattr(triggers, "_hashes", {})
    monkeypatch.setattr(triggers, "_cache", {"loaded": False, "dirty": False})


def test_a_run_that_changed_nothing_parses_nothing_and_a_changed_file_is_parsed_again(tmp_path, monkeypatch):
    package = _copy_package(tmp_path, monkeypatch)
    workdir = tmp_path / "work"
    (workdir / ".snakemake").mkdir(parents=True)
    monkeypatch.chdir(workdir)
    _new_process(monkeypatch)
    first = triggers.code_hash("benchmark", "onnx")
    assert (workdir / triggers.CACHE).is_file()

    _new_process(monkeypatch)
    parse = ast.parse

    def counted(*args, **kwargs):
        counted.calls += 1
        return parse(*args, **kwargs)
    counted.calls = 0
    monkeypatch.setattr(triggers.ast, "parse", counted)
    assert triggers.code_hash("benchmark", "onnx") == first and counted.calls == 0

    _new_process(monkeypatch)
    timing = package / "measure" / "timing.py"
    timing.write_text(timing.read_text() + "\nA_CHANGE = 1\n")
    assert triggers.code_hash("benchmark", "onnx") != first and counted.calls == 1

    _new_process(monkeypatch)
    (workdir / triggers.CACHE).write_text("{not json")
    assert triggers.code_hash("benchmark", "onnx") != first, "an unreadable cache is parsed around"


def test_a_stages_code_names_each_module_so_a_rerun_reason_names_the_changed_one(tmp_path, monkeypatch):
    """Snakemake's reason for a rerun prints the `code` param before and now: it shows the module that changed,
    not only a new hash."""
    package = _copy_package(tmp_path, monkeypatch)
    _new_process(monkeypatch)
    before = dict(entry.rsplit(":", 1) for entry in triggers.code_hash("benchmark", "onnx").split(", "))
    assert {"measure.timing", "backends.onnx", "scripts/benchmark.py"} <= set(before)
    assert all(len(digest) == triggers.DIGEST_CHARS for digest in before.values())
    timing = package / "measure" / "timing.py"
    timing.write_text(timing.read_text() + "\nA_CHANGE = 1\n")
    after = dict(entry.rsplit(":", 1) for entry in triggers.code_hash("benchmark", "onnx").split(", "))
    assert {name for name in before if before[name] != after[name]} == {"measure.timing"}
    assert len(triggers.code_hash("report")) < 2000, "a small param"


def test_each_rule_runs_the_script_named_after_it_and_scripts_holds_nothing_else():
    """A rule's name is what a user reads in the log: its adapter in scripts/ has that name, and every script there
    is a rule's (the developer tools are in tools/)."""
    rules = "".join(path.read_text() for path in sorted((triggers.PACKAGE_DIR.parent / "rules").glob("*.smk")))
    ran = dict(re.findall(r"^rule (\w+):\n(?:(?!^rule ).*\n)*?    script:\n        \"\.\./scripts/(\w+\.py)\"", rules,
                          re.M))
    assert ran == {stage: f"{stage}.py" for stage in triggers.STAGE_SCRIPTS}
    assert {path.name for path in triggers.SCRIPTS_DIR.glob("*.py")} == set(ran.values())
