# One job per (format, device, precision, image size) measures every batch size and loader, one fresh
# process per configuration; each configuration still gets its own JSON.


def _job(wc):
    return study.Job(wc.format, wc.device, wc.precision, int(wc.size))


def _benchmark_inputs(wc):
    inputs = {
        "weights": rules.model.output.weights,
        "manifest": rules.images.output.manifest,
        "reference": f"artifacts/reference/{wc.size}.pt",
    }
    artifact = study.export_path(study.backend_of(config, wc.format), wc.precision, wc.device, wc.size)
    if artifact:
        inputs["artifact"] = artifact
        inputs["provenance"] = study.provenance_path(artifact)
    return inputs


def _outputs(device):
    return expand(study.RESULTS, host="{host}", format="{format}", device="{device}", precision="{precision}",
                  size="{size}", loader=study.loaders_for(config, device), batch=config["batch_sizes"])


rule benchmark:
    input:
        unpack(_benchmark_inputs),
    output:
        _outputs("cpu"),
    wildcard_constraints:
        device="cpu",
    params:
        batch_sizes=config["batch_sizes"],
        loaders=lambda wc: study.loaders_for(config, wc.device),
        measurement=lambda wc: config["measurement"][wc.device],
        noisy_iqr_ratio=config["measurement"].get("noisy_iqr_ratio", 0.10),
        loader=config["loader"],
        options=lambda wc: study.format_options(config, wc.format),
        backend=lambda wc: study.backend_of(config, wc.format),
        versions=lambda wc: study.library_versions(study.backend_of(config, wc.format)),
        hardware=lambda wc: hardware.device_fingerprint(wc.device),
        code=lambda wc: study.code_hash("benchmark", study.backend_of(config, wc.format)),
        cpu_threads=CPU_THREADS,  # what CPU rows use, whatever --cores caps `threads` at
    threads: CPU_THREADS
    log:
        "artifacts/logs/benchmark/{host}/{format}-{device}-{precision}-{size}.log",
    script:
        "../scripts/benchmark.py"


# CUDA rows: one GPU each (`--resources gpu=N` runs N at once, each on its own GPU).
use rule benchmark as benchmark_cuda with:
    output:
        _outputs("cuda"),
    wildcard_constraints:
        device="cuda",
    threads: config["loader"]["cuda_workers"] + 1  # the DataLoader workers need cores (Snakemake caps at --cores)
    resources:
        gpu=1,
