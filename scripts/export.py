"""Snakemake `export` rule: one format's artifact + provenance (or a marker saying why not)."""
import sys

sys.path.insert(0, snakemake.scriptdir + "/..")  # noqa: F821
from fmtbench import export, gpus, logs  # noqa: E402


def main():
    logs.setup(snakemake.log)  # noqa: F821
    wc = snakemake.wildcards  # noqa: F821
    with gpus.claim_for(wc.device):
        export.run(wc.format, wc.precision, wc.device, wc.size, snakemake.input.weights,  # noqa: F821
                   snakemake.params.batch_sizes, snakemake.params.options,  # noqa: F821
                   snakemake.output.artifact, snakemake.output.provenance, threads=snakemake.threads)  # noqa: F821


# A guard: multiprocessing's spawn re-imports this file in its children, which must not rerun the job.
if __name__ == "__main__":
    main()
