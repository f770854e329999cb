"""Snakemake `report` rule: report/report.md, its plots, the HTML report's tables and the results CSV."""
from fmtbench import logs
from fmtbench.report import render

sm = snakemake  # noqa: F821 - set by Snakemake's script preamble


def main():
    logs.setup(sm.log)
    render.render(sm.input.results, sm.input.model, sm.output.report, baseline=sm.params.baseline,
                  measurement=sm.params.measurement, export_provenance=list(sm.input.export_provenance),
                  tables_dir=sm.output.tables, results_csv=sm.output.csv)
    with open(sm.output.complete, "w", encoding="utf-8") as mark:
        mark.write(f"{len(sm.input.results)} results\n")


if __name__ == "__main__":
    logs.run(main, f"rule {sm.rule}")
