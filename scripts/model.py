"""Snakemake `model` rule: ResNet-18 weights (ImageNet, seeded random or a file) + provenance."""
from fmtbench import lifeline, logs, model, versions
from fmtbench.atomic import write_json

sm = snakemake  # noqa: F821 - set by Snakemake's script preamble


def main():
    logs.setup(sm.log)
    params = sm.params
    weights = model.resolve(params.weights, seed=params.seed, expected_sha256=params.sha256)
    digest = model.save(weights, sm.output.weights)
    write_json(sm.output.provenance, {
        "source": weights.source, **weights.detail, "setting": params.weights,
        "state_dict_sha256": digest, "libraries": versions.versions(["torch", "torchvision"]),
    })


if __name__ == "__main__":
    lifeline.hold()  # ends with the Snakemake process that started it
    logs.run(main, f"rule {sm.rule}", refused=(model.WeightsError,))
