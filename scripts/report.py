"""Snakemake `report` rule: report/report.md, its plots, the HTML report's tables, front page and the results CSV."""
from fmtbench import lifeline, logs
from fmtbench.atomic import replaced_together
from fmtbench.report import render, result_files

sm = snakemake  # noqa: F821 - set by Snakemake's script preamble


def main():
    logs.setup(sm.log)
    out = sm.output
    # Written beside the previous report, which Snakemake keeps (update()) and each new file replaces at the end.
    with replaced_together(out.plots, out.tables, out.csv, out.front, out.report) as (plots, tables, csv, front,
                                                                                     report):
        render.render(sm.input.results, sm.input.model, report, baseline=sm.params.baseline,
                      export_provenance=list(sm.input.export_provenance),
                      tables_dir=tables, results_csv=csv, front_page=front)
    with open(out.complete, "w", encoding="utf-8") as mark:
        mark.write(f"{len(sm.input.results)} results\n")


if __name__ == "__main__":
    lifeline.hold()  # ends with the Snakemake process that started it
    logs.run(main, f"rule {sm.rule}", refused=(result_files.RefusedInput,))
