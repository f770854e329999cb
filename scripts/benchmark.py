"""Snakemake `benchmark` rule: every image size, batch size and loader of one (format, device, precision)."""
from dataclasses import replace

from fmtbench import lifeline, logs
from fmtbench.measure import job, request
from fmtbench.workflow import gpus, hardware

sm = snakemake  # noqa: F821 - set by Snakemake's script preamble


def main():
    logs.setup(sm.log)
    wc = sm.wildcards
    requests = request.for_job(wc, sm.params, sm.input, sm.output)
    pinned = requests[0].measurement.switches.pin_cores
    # Inherited by every measuring child and DataLoader worker; under SLURM or taskset, within what was given.
    cores = hardware.pin(sm.params.cores) if pinned else hardware.usable_cores()
    if wc.device == "cpu":
        requests = [replace(item, threads=len(cores)) for item in requests]
    candidates = gpus.candidates() if wc.device == "cuda" else []
    with gpus.claim_for(wc.device) as gpu:
        if pinned and gpu is not None and len(candidates) > 1:  # CUDA jobs at once on several GPUs: their shares
            hardware.pin(hardware.gpu_slices(cores, len(candidates))[candidates.index(gpu)])
        job.run(requests)


if __name__ == "__main__":
    lifeline.hold()  # ends with the Snakemake process that started it
    logs.run(main, f"rule {sm.rule}")
