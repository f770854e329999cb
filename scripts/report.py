"""Snakemake `report` rule: report/report.md and report/plots/ from the result JSONs."""
import sys

sys.path.insert(0, snakemake.scriptdir + "/..")  # noqa: F821
from fmtbench import logs  # noqa: E402
from fmtbench.report import render  # noqa: E402



def main():
    sm = snakemake  # noqa: F821
    logs.setup(sm.log)
    render.render(sm.input.results, sm.input.model, sm.output.report, baseline=sm.params.baseline,
                  measurement=sm.params.measurement, export_provenance=sm.input.exports,
                  tables_dir=sm.output.tables, results_csv=sm.output.csv)


# A guard: multiprocessing's spawn re-imports this file in its children, which must not rerun the job.
if __name__ == "__main__":
    main()
