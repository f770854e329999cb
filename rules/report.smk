# The Markdown report, from this machine's results and any other machine's copied under artifacts/results/.
# Its plots, per-configuration tables and results CSV are also items of Snakemake's HTML report:
# `snakemake --report report/report.html` (categories: image sizes; subcategories: formats).
from fmtbench.report import items

OWN_RESULTS = [path for job in JOBS for path in study.result_paths(config, job, HOST)]
# Another machine's results: everything under artifacts/results/ outside this host's directory.
OTHER_RESULTS = sorted(path for path in glob.glob(study.RESULTS.format(host="*", format="*", device="*",
                                                                       precision="*", size="*", loader="*", batch="*"))
                       if not path.startswith(f"artifacts/results/{HOST}/"))


OWN_EXPORTS = sorted({study.provenance_path(path) for job in JOBS
                      if (path := study.export_path(study.backend_of(config, job.format), job.precision, job.device,
                                                    job.size))})


rule report:
    input:
        results=OWN_RESULTS + OTHER_RESULTS,
        exports=OWN_EXPORTS,
        model=rules.model.output.provenance,
    output:
        report="report/report.md",
        plots=report(directory("report/plots"), patterns=[items.FIGURE_PATTERN], caption="report/figure.rst",
                     category=items.figure_category, subcategory=items.ALL_FORMATS, labels=items.figure_labels),
        tables=report(directory("report/tables"), patterns=[items.TABLE_PATTERN], caption="report/table.rst",
                      category=lambda wildcards: items.size_category(wildcards.size), subcategory="{format}",
                      labels={"machine": "{host}"}),
        csv=report("report/results.csv", caption="report/results.rst", category=items.ALL_SIZES,
                   subcategory=items.ALL_FORMATS, labels={"data": "every configuration, one row each"}),
    params:
        baseline=config["baseline"],
        measurement=config["measurement"],
        code=study.code_hash("report"),
    log:
        "artifacts/logs/report.log",
    script:
        "../scripts/report.py"
