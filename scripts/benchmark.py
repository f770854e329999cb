"""Snakemake `benchmark` rule: every batch size and loader of one (format, device, precision, size)."""
from fmtbench import gpus, hardware, logs, paths, runner, timing

sm = snakemake  # noqa: F821 - set by Snakemake's script preamble


def main():
    logs.setup(sm.log)
    wc, params = sm.wildcards, sm.params
    # Inherited by every measuring child and DataLoader worker; under SLURM or taskset, within what was given.
    cores = hardware.pin(params.cores)
    job = runner.JobRequest(
        format=wc.format, backend=params.backend, device=wc.device, precision=wc.precision,
        image_size=int(wc.size), host=wc.host,
        batch_sizes=tuple(params.batch_sizes), loaders=tuple(params.loaders),
        weights=sm.input.weights, manifest=sm.input.manifest, reference=sm.input.reference,
        artifact=sm.input.get("artifact"), provenance=sm.input.get("provenance"),
        measurement=timing.Settings.from_config(params.measurement), noisy_iqr_ratio=params.noisy_iqr_ratio,
        unstable_spread=params.unstable_spread, loader_workers=params.loader_workers,
        threads=len(cores) if wc.device == "cpu" else None, options=dict(params.options),
        outputs={paths.result_key(path): path for path in sm.output}, model_provenance=sm.input.model,
    )
    with gpus.claim_for(wc.device):
        runner.run_job(job)


if __name__ == "__main__":
    logs.run(main, f"rule {sm.rule}")
