"""Snakemake `export` rule: one format's artifact + provenance (or a marker saying why not)."""
import sys

sys.path.insert(0, snakemake.scriptdir + "/..")  # noqa: F821
from fmtbench import gpus, export, logs  # noqa: E402



def main():
    logs.setup(snakemake.log)  # noqa: F821
    wc = snakemake.wildcards  # noqa: F821
    def run():
        export.run(wc.format, wc.precision, wc.device, wc.size, snakemake.input.weights,  # noqa: F821
                   snakemake.params.batch_sizes, snakemake.params.options,  # noqa: F821
                   snakemake.output.artifact, snakemake.output.provenance, threads=snakemake.threads)  # noqa: F821
    if wc.device == "cuda":
        with gpus.claim():  # compilers autotune on the GPU: it must be ours alone
            run()
    else:
        run()


# A guard: multiprocessing's spawn re-imports this file in its children, which must not rerun the job.
if __name__ == "__main__":
    main()
