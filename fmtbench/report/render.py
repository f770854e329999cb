"""Writes the report: report.md with its plots, and for Snakemake's HTML report its front page, table items and
results CSV. It reads the result files, orders the sections (the answer, the findings, the tables and plots, then
the setup and the method, the exports and what did not run) and writes the outputs; each section is a module of
its own."""
from __future__ import annotations

from pathlib import Path

from fmtbench.atomic import atomic_path, read_json
from fmtbench.model import is_random
from fmtbench.report import (
    answer,
    cells,
    exports,
    findings,
    frontpage,
    items,
    legend,
    method,
    notrun,
    result_files,
    setup,
    tables,
)
from fmtbench.report import frame as frames


def render(result_paths, model_provenance_path, report_path, baseline: dict, export_provenance=(), tables_dir=None,
           results_csv=None, front_page=None) -> None:
    """report.md with its plots; with tables_dir / results_csv / front_page also the HTML report's table items and
    front page. How each row was measured is read from the row (its `measurement`), nowhere else.

    `result_paths`: every result the study asks for; those without a file are listed as not run. Every file is
    checked before anything is written (result_files.RefusedInput names those that fail)."""
    present = [path for path in result_paths if Path(path).exists()]
    missing = [str(path) for path in result_paths if not Path(path).exists()]
    records = result_files.read(present)
    report_path = Path(report_path)
    plots_dir = report_path.parent / "plots"
    plots_dir.mkdir(parents=True, exist_ok=True)

    def figure(host: str, name: str) -> tuple[Path, str]:
        path = items.figure_path(plots_dir, host, name)
        path.parent.mkdir(parents=True, exist_ok=True)
        return path, path.relative_to(report_path.parent).as_posix()

    model_provenance = read_json(model_provenance_path)
    table = frames.study(present, records, baseline)
    ok = table[table["status"] == "ok"]
    summary = notrun.summary(table, missing)
    short = answer.answer(ok, baseline["format"], baseline["precision"]) if not ok.empty else []
    found = findings.all_findings(table, baseline["format"], is_random(model_provenance))
    lines = ["# fmtbench: ResNet-18 inference by deployment format", ""]
    lines += setup.warnings(model_provenance, ok)
    lines += [summary, ""] + (["**In short:**", "", *[f"- {line}" for line in short], ""] if short else [])
    lines += ["## Findings", "", *[f"- {line}" for line in found], ""]
    lines += tables.across_machines(ok, figure)
    lines += legend.section(ok, baseline)
    lines += tables.per_machine(ok, figure)
    lines += setup.section(model_provenance, ok, table)
    lines += method.section(ok, baseline) if not ok.empty else []
    lines += exports.section(export_provenance)
    lines += notrun.section(table, missing)
    with atomic_path(report_path) as tmp:
        tmp.write_text("\n".join(lines), encoding="utf-8")
    if front_page is not None:
        with atomic_path(Path(front_page)) as tmp:
            tmp.write_text(frontpage.front_page(model_provenance, ok, summary, short, found), encoding="utf-8")
    if tables_dir is not None:
        cells.write_item_tables(ok, Path(tables_dir))
    if results_csv is not None:
        with atomic_path(Path(results_csv)) as tmp:
            frames.csv_columns(table).to_csv(tmp, index=False)
