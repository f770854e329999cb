"""Snakemake `model` rule: ResNet-18 weights (ImageNet, seeded random or a file) + provenance."""
import sys

sys.path.insert(0, snakemake.scriptdir + "/..")  # noqa: F821 - `snakemake` is injected by Snakemake
from fmtbench import logs, model, versions  # noqa: E402
from fmtbench.atomic import write_json  # noqa: E402



def main():
    logs.setup(snakemake.log)  # noqa: F821
    params = snakemake.params  # noqa: F821
    weights = model.resolve(params.weights, seed=params.seed, expected_sha256=params.sha256)
    digest = model.save(weights, snakemake.output.weights)  # noqa: F821
    write_json(snakemake.output.provenance, {  # noqa: F821
        "source": weights.source, **weights.detail, "setting": params.weights,
        "state_dict_sha256": digest, "libraries": versions.versions(["torch", "torchvision"]),
    })


# A guard: multiprocessing's spawn re-imports this file in its children, which must not rerun the job.
if __name__ == "__main__":
    main()
