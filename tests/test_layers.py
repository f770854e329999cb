"""The package's floors: a module imports only modules on floors below its own (no upward import, no cycle).
A new module must be given a floor here."""
import ast
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent.parent / "fmtbench"
FORMATS = {f"backends.{path.stem}" for path in (PACKAGE_DIR / "backends").glob("*.py")
           if path.stem != "base" and not path.stem.startswith("_")}
LAYERS = [
    # dataclasses as JSON records and their schema; what a row times (model alone, end to end); the docstring of
    # the Snakefile's helpers' package
    {"typedjson", "scope", "workflow"},
    # words and tools: where files go, atomic files, logging, library versions, statistics, accuracy, the typed
    # parts of a row, a process that ends with the one that started it, how a row is measured (each measurement
    # setting, declared once), the host's CPUs in turns; the machine's cores, how Snakemake was invoked, the config
    # as written (the workflow's); a process's memory and the OS's process table (the measurement's)
    {"paths", "atomic", "logs", "versions", "stats", "accuracy", "report", "row_parts", "lifeline", "settings",
     "host_turns", "workflow.hardware", "workflow.invocation", "workflow.configcheck", "measure.memory",
     "measure.procinfo"},
    # one concern each: images, a state dict file as given, processes and their failures; file checks, GPU claims,
    # a killed Snakemake's lock (the workflow's); the clocks, what else used the machine (the measurement's)
    {"images", "checkpoint", "isolation", "workflow.integrity", "workflow.gpus", "workflow.locks", "measure.timing",
     "measure.contention"},
    # what a source is asked for and gives (InputFormat, Source); the model's weights
    {"data.inputs", "model"},
    {"data.feeds"},                             # workers kept running
    {"data.sources"},                           # the batch sources
    {"data"},                                   # the loaders' registry
    {"backends.base"},                          # the format contract
    {"backends", "backends._torchutil"},        # the registry (backends by name, never imported statically), helpers
    {"backends._ort_session"},                  # ONNX Runtime sessions (the onnx backend's helpers)
    FORMATS,                                    # one module per format
    # stages and the DAG's view: environment record, result records, export, reference logits, the plan, triggers,
    # whether a configuration fits in the memory free
    {"env", "results", "export", "reference", "workflow.plan", "workflow.triggers", "measure.headroom"},
    {"report.labels"},                          # the report's words for a row and its figures
    # the measurement's words (how a row is measured, what passes between a process and its job); the report's
    # frame of the rows, the result files it reads, checked, and the marks a row carries
    {"measure", "measure.messages", "report.frame", "report.result_files", "report.marks", "report.axes"},
    # a request; how a configuration is timed; the job process's monitors; the report's sections that need only
    # the rows: findings, setup, method, exports, what did not run, the HTML report's items, the decode capacity,
    # the replicate check
    {"measure.request", "measure.scenarios", "measure.monitors", "report.findings", "report.items",
     "report.replicate", "report.loaders", "report.setup", "report.method", "report.exports", "report.notrun"},
    # the measuring process, the export a request runs, checked; the report's plots, cells and answer
    {"measure.measuring_process", "measure.export_check", "report.plots", "report.cells", "report.answer"},
    # a request prepared (unavailable, tuned); the report's legend, front page and results sections
    {"measure.preparation", "report.legend", "report.frontpage", "report.tables"},
    {"measure.schedule", "report.render"},      # the job's measuring processes; the report
    # rows from readings; one measuring process for the tools (their entry point to the measurement)
    {"measure.assemble", "measure.probe"},
    {"measure.row_files"},                      # rows written
    {"measure.job"},                            # a benchmark job
]


def _name(path: Path) -> str:
    parts = path.relative_to(PACKAGE_DIR).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_module(name: str) -> bool:
    base = PACKAGE_DIR.joinpath(*name.split(".")) if name else PACKAGE_DIR
    return (base / "__init__.py").is_file() or base.with_suffix(".py").is_file()


def imports(path: Path) -> set[str]:
    """The package modules a module names in its import statements (anywhere in it), package-relative."""
    module = _name(path)
    package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(["fmtbench", *package[:len(package) - node.level + 1], *filter(None, [node.module])])
            for alias in node.names:  # `from a import b`: module a.b if there is one, else a name of a
                found.add(f"{base}.{alias.name}" if _is_module(f"{base}.{alias.name}"[9:]) else base)
    return {name[len("fmtbench."):] for name in found if name.startswith("fmtbench.")} - {module}


def floor_of() -> dict[str, int]:
    return {module: index for index, layer in enumerate(LAYERS) for module in layer}


def test_every_module_has_one_floor():
    modules = {_name(path) for path in PACKAGE_DIR.rglob("*.py")} - {""}
    assert sum(len(layer) for layer in LAYERS) == len(floor_of()), "a module on two floors"
    assert modules == set(floor_of())


def test_no_module_imports_one_on_its_floor_or_above():
    floors = floor_of()
    upward = [f"{_name(path)} (floor {floors[_name(path)]}) imports {name} (floor {floors[name]})"
              for path in sorted(PACKAGE_DIR.rglob("*.py")) if _name(path)
              for name in sorted(imports(path)) if floors[name] >= floors[_name(path)]]
    assert not upward, "\n".join(upward)


def test_the_tools_measure_through_the_entry_point():
    """tools/ reaches the measurement only through fmtbench.measure.probe, never its internals."""
    tools = Path(__file__).resolve().parent.parent / "tools"
    reached = {f"{path.name}: {name}" for path in sorted(tools.glob("*.py"))
               for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
               if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("fmtbench.measure")
               for name in ([node.module] if node.module != "fmtbench.measure" else
                            [f"fmtbench.measure.{alias.name}" for alias in node.names])
               if name != "fmtbench.measure.probe"}
    assert not reached, reached
