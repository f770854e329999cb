"""Snakemake `export` rule: one format's artifact + provenance (or a marker saying why not)."""
from fmtbench import export, host_turns, lifeline, logs
from fmtbench.workflow import hardware

sm = snakemake  # noqa: F821 - set by Snakemake's script preamble


def main():
    logs.setup(sm.log)
    cores = hardware.pin(sm.params.cores)
    wc = sm.wildcards
    with host_turns.shared(f"export {wc.format} {wc.precision} {wc.device} {wc.size}"):  # not beside a CPU row
        export.run(wc.format, wc.precision, wc.device, wc.size, sm.input.weights, sm.params.batch_sizes,
                   sm.params.options, sm.output.artifact, sm.output.provenance, threads=len(cores))


if __name__ == "__main__":
    lifeline.hold()  # ends with the Snakemake process that started it
    logs.run(main, f"rule {sm.rule}")
