# The Markdown report, from this machine's results and any other machine's copied under artifacts/results/.
# Its plots, per-configuration tables and results CSV are also items of Snakemake's HTML report:
# `snakemake --report report/report.html` (categories: image sizes; subcategories: formats).


rule report:
    input:
        results=report_results(),
        exports=report_exports(),
        # not read: asked for so that a deleted or damaged one is remade (and what used it rerun)
        references=list(OWN["references"].values()),
        model=rules.model.output.provenance,
    output:
        report="report/report.md",
        complete=study.REPORT_COMPLETE,
        plots=report(
            directory("report/plots"),
            patterns=[items.FIGURE_PATTERN],
            caption="report/figure.rst",
            category=items.figure_category,
            subcategory=items.ALL_FORMATS,
            labels=items.figure_labels,
        ),
        tables=report(
            directory("report/tables"),
            patterns=[items.TABLE_PATTERN],
            caption="report/table.rst",
            category=lambda wildcards: items.size_category(wildcards.size),
            subcategory="{format}",
            labels=items.table_labels,
        ),
        csv=report(
            "report/results.csv",
            caption="report/results.rst",
            category=items.ALL_SIZES,
            subcategory=items.ALL_FORMATS,
            labels=items.csv_labels,
        ),
    log:
        "artifacts/logs/report.log",
    params:
        baseline=config["baseline"],
        measurement=config["measurement"],
        code=study.code_hash("report"),
    script:
        "../scripts/report.py"
