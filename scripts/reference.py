"""Snakemake `reference` rule: PyTorch fp32 eager CPU logits of the fixed accuracy batch."""
from fmtbench import host_turns, lifeline, logs, reference
from fmtbench.workflow import hardware

sm = snakemake  # noqa: F821 - set by Snakemake's script preamble


def main():
    logs.setup(sm.log)
    cores = hardware.pin(sm.params.cores)  # never on a timed CUDA job's cores
    with host_turns.shared(f"reference {sm.wildcards.size}"):  # not beside a CPU row
        reference.compute(sm.input.weights, sm.input.manifest, int(sm.wildcards.size), sm.params.n_images,
                          sm.output[0], threads=len(cores))


if __name__ == "__main__":
    lifeline.hold()  # ends with the Snakemake process that started it
    logs.run(main, f"rule {sm.rule}")
