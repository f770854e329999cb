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
    artifact = study.export_path(wc.format, wc.precision, wc.device, wc.size)
    if artifact:
        inputs["artifact"] = artifact
        inputs["provenance"] = study.provenance_path(artifact)
    return inputs


rule benchmark:
    input:
        unpack(_benchmark_inputs),
    output:
        expand(study.RESULTS, host="{host}", format="{format}", device="{device}", precision="{precision}",
               size="{size}", loader=config["loaders"], batch=config["batch_sizes"]),
    params:
        batch_sizes=config["batch_sizes"],
        loaders=config["loaders"],
        measurement=lambda wc: config["measurement"][wc.device],
        noisy_iqr_ratio=config["measurement"].get("noisy_iqr_ratio", 0.10),
        loader=config["loader"],
        options=lambda wc: study.format_options(config, wc.format),
        versions=lambda wc: study.library_versions(wc.format),
        hardware=lambda wc: hardware.device_fingerprint(wc.device),
        code=lambda wc: study.code_hash("benchmark", wc.format),
    threads: lambda wc: CPU_THREADS if wc.device == "cpu" else 1
    resources:
        gpu=lambda wc: 1 if wc.device == "cuda" else 0,
    log:
        "artifacts/logs/benchmark/{host}/{format}-{device}-{precision}-{size}.log",
    script:
        "../scripts/benchmark.py"
