"""Snakemake `reference` rule: PyTorch fp32 eager CPU logits of the fixed accuracy batch."""
import sys

sys.path.insert(0, snakemake.scriptdir + "/..")  # noqa: F821
from fmtbench import logs, reference  # noqa: E402



def main():
    logs.setup(snakemake.log)  # noqa: F821
    reference.compute(snakemake.input.weights, snakemake.input.manifest, int(snakemake.wildcards.size),  # noqa: F821
                      snakemake.params.n_images, snakemake.output[0], threads=snakemake.threads)  # noqa: F821


# A guard: multiprocessing's spawn re-imports this file in its children, which must not rerun the job.
if __name__ == "__main__":
    main()
