# Input functions and helpers of the rules (Snakemake's lint wants them apart from the rules).
from fmtbench.report import items


def weights_file(wildcards):
    weights = config["model"]["weights"]
    return [] if weights in ("imagenet", "random") else [weights]


def benchmark_inputs(wildcards):
    inputs = {
        "weights": rules.model.output.weights,
        "model": rules.model.output.provenance,
        "manifest": rules.images.output.manifest,
        "reference": paths.REFERENCE.format(size=wildcards.size),
    }
    artifact = study.export_path(
        study.backend_of(config, wildcards.format),
        wildcards.precision,
        wildcards.device,
        wildcards.size,
    )
    if artifact and study.runs_here(wildcards.device):
        inputs["artifact"] = artifact
        inputs["provenance"] = paths.provenance(artifact)
    return inputs


def benchmark_outputs(device):
    return expand(
        paths.RESULTS,
        host="{host}",
        format="{format}",
        device="{device}",
        precision="{precision}",
        size="{size}",
        loader=study.loaders_for(config, device),
        batch=study.batch_sizes(config, device),
    )


def export_cores(wildcards):
    """Exports that hold the GPU run alone on it, so they may use the CUDA jobs' cores too."""
    if wildcards.device == "cuda":
        return sorted(set(CORES["cuda"]) | set(CORES["export"]))
    return CORES["export"]


def export_batch_sizes(wildcards):
    """The batch sizes an artifact must serve: its device's, or every device's for device-independent ones."""
    devices = ["cpu", "cuda"] if wildcards.device == "any" else [wildcards.device]
    return sorted(
        {size for device in devices for size in study.batch_sizes(config, device)}
    )


def loader_workers(device):
    """DataLoader workers of a job: the configured number, at most one fewer than the job's cores."""
    if device == "cpu":
        return config["loader"]["workers"]
    return max(1, min(config["loader"]["cuda_workers"], len(CORES["cuda"]) - 1))


def report_results():
    """This machine's result JSONs, and every other machine's found under the results directory."""
    return [path for job in OWN["results"] for path in job] + FOREIGN


def report_exports():
    """Every export this machine's rows ran (none for CUDA rows on a machine without a GPU)."""
    return OWN["exports"]


def report_export_provenance():
    """What each export of report_exports() wrote about it."""
    return [paths.provenance(path) for path in OWN["exports"]]
