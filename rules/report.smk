# The Markdown report, from this machine's results and any other machine's copied under artifacts/results/.

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
    params:
        baseline=config["baseline"],
        measurement=config["measurement"],
        code=study.code_hash("report"),
    log:
        "artifacts/logs/report.log",
    script:
        "../scripts/report.py"
