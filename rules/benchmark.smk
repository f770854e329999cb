# One job per (format, device, precision) measures every image size, batch size and loader: per image size its
# measuring processes each load the model once and measure every configuration (fmtbench/measure/); one JSON
# each. One job for all sizes: its fixed cost (imports, environment, GPU claim) is paid once.


rule benchmark:
    input:
        unpack(benchmark_inputs),
    output:
        benchmark_outputs("cpu"),
    log:
        paths.BENCHMARK_LOG,
    wildcard_constraints:
        device="cpu",
    threads: job_threads
    resources:
        cpu_rows=1,  # one CPU job at a time (the profiles allow 1): its cores are its own
    params:
        sizes=config["image_sizes"],
        artifacts=benchmark_artifacts,
        batch_sizes=lambda wc: plan.batch_sizes(config, wc.device),
        loaders=lambda wc: plan.loaders_for(config, wc.device),
        measurement=lambda wc: settings.for_device(config["measurement"], wc.device),
        loader_workers=lambda wc: loader_workers(wc.device),
        options=lambda wc: plan.format_options(config, wc.format),
        backend=lambda wc: plan.backend_of(config, wc.format),
        versions=lambda wc: triggers.library_versions(
            plan.backend_of(config, wc.format)
        ),
        hardware=lambda wc: hardware.device_fingerprint(wc.device),
        code=lambda wc: triggers.code_hash(
            "benchmark", plan.backend_of(config, wc.format)
        ),
        cores=lambda wc: CORES[wc.device],  # what the job runs on, whatever --cores caps `threads` at
    script:
        "../scripts/benchmark.py"


# CUDA rows: one GPU each (`--resources gpu=N` runs N at once, each on its own GPU).
use rule benchmark as benchmark_cuda with:
    output:
        benchmark_outputs("cuda"),
    wildcard_constraints:
        device="cuda",
    resources:
        gpu=1,
        cpu_rows=0,
