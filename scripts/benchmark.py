"""Snakemake `benchmark` rule: every image size, batch size and loader of one (format, device, precision)."""
from fmtbench import gpus, hardware, logs, paths, runner, timing

sm = snakemake  # noqa: F821 - set by Snakemake's script preamble


def main():
    logs.setup(sm.log)
    wc, params = sm.wildcards, sm.params
    # Inherited by every measuring child and DataLoader worker; under SLURM or taskset, within what was given.
    cores = hardware.pin(params.cores)
    jobs = []
    for size in params.sizes:
        artifact = params.artifacts.get(size)
        jobs.append(runner.JobRequest(
            format=wc.format, backend=params.backend, device=wc.device, precision=wc.precision,
            image_size=int(size), host=wc.host,
            batch_sizes=tuple(params.batch_sizes), loaders=tuple(params.loaders),
            weights=sm.input.weights, manifest=sm.input.manifest, reference=paths.REFERENCE.format(size=size),
            artifact=artifact, provenance=paths.provenance(artifact) if artifact else None,
            measurement=timing.Settings.from_config(params.measurement), noisy_iqr_ratio=params.noisy_iqr_ratio,
            unstable_spread=params.unstable_spread, loader_workers=params.loader_workers,
            threads=len(cores) if wc.device == "cpu" else None, options=dict(params.options),
            outputs={paths.result_key(path): path for path in sm.output if paths.result_size(path) == int(size)},
            model_provenance=sm.input.model,
        ))
    candidates = gpus.candidates() if wc.device == "cuda" else []
    with gpus.claim_for(wc.device) as gpu:
        if gpu is not None and len(candidates) > 1:  # CUDA jobs at once on several GPUs: each on its GPU's share
            hardware.pin(hardware.gpu_slices(cores, len(candidates))[candidates.index(gpu)])
        runner.run_jobs(jobs)


if __name__ == "__main__":
    logs.run(main, f"rule {sm.rule}")
