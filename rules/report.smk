# The Markdown report, from this machine's results and any other machine's copied under artifacts/results/.
# Its plots, per-configuration tables and results CSV are also items of Snakemake's HTML report:
# `snakemake --report report/report.html` (categories: image sizes; subcategories: formats).
# update(): Snakemake neither deletes the previous report before the job nor leaves it deleted when the job fails
# (it restores its copy); the job writes the new report beside it and replaces it only once it is complete.


rule report:
    input:
        results=report_results(),
        export_provenance=report_export_provenance(),
        model=rules.model.output.provenance,
        # not read: asked for so that a deleted or damaged one is remade (and what used it rerun)
        exports=report_exports(),
        references=list(OWN["references"].values()),
    output:
        report=update(paths.REPORT),
        front=update(paths.REPORT_FRONT),
        complete=paths.REPORT_COMPLETE,
        plots=report(
            update(directory(paths.PLOTS)),
            patterns=[items.FIGURE_PATTERN],
            caption="report/figure.rst",
            category=items.figure_category,
            subcategory=items.ALL_FORMATS,
            labels=items.figure_labels,
        ),
        tables=report(
            update(directory(paths.TABLES)),
            patterns=[items.TABLE_PATTERN],
            caption="report/table.rst",
            category=lambda wildcards: items.size_category(wildcards.size),
            subcategory="{format}",
            labels=items.table_labels,
        ),
        csv=report(
            update(paths.RESULTS_CSV),
            caption="report/results.rst",
            category=items.ALL_SIZES,
            subcategory=items.ALL_FORMATS,
            labels=items.csv_labels,
        ),
    log:
        paths.REPORT_LOG,
    params:
        baseline=config["baseline"],
        code=triggers.code_hash("report"),
    script:
        "../scripts/report.py"
