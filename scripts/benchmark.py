"""Snakemake `benchmark` rule: every batch size and loader of one (format, device, precision, size)."""
import sys

sys.path.insert(0, snakemake.scriptdir + "/..")  # noqa: F821
from fmtbench import gpus, logs, runner, study, timing  # noqa: E402


def main():
    sm = snakemake  # noqa: F821
    logs.setup(sm.log)
    wc, params = sm.wildcards, sm.params
    outputs = {study.result_key(path): path for path in sm.output}
    job = runner.JobRequest(
        format=wc.format, backend=params.backend, device=wc.device, precision=wc.precision,
        image_size=int(wc.size), host=wc.host,
        batch_sizes=tuple(params.batch_sizes), loaders=tuple(params.loaders),
        weights=sm.input.weights, manifest=sm.input.manifest, reference=sm.input.reference,
        artifact=sm.input.get("artifact"), provenance=sm.input.get("provenance"),
        measurement=timing.Settings.from_config(params.measurement), noisy_iqr_ratio=params.noisy_iqr_ratio,
        loader_workers=params.loader["cuda_workers" if wc.device == "cuda" else "workers"],
        threads=params.cpu_threads if wc.device == "cpu" else None, options=dict(params.options), outputs=outputs,
    )
    with gpus.claim_for(wc.device):
        runner.run_job(job)


# A guard: multiprocessing's spawn re-imports this file in its children, which must not rerun the job.
if __name__ == "__main__":
    main()
