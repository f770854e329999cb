# Input functions and helpers of the rules (Snakemake's lint wants them apart from the rules).
from snakemake.exceptions import WorkflowError

from fmtbench.report import items


def weights_file(wildcards):
    weights = config["model"]["weights"]
    return [] if weights in ("imagenet", "random") else [weights]


def benchmark_artifacts(wildcards):
    """Image size -> the export a job's rows at that size run (none for formats without one, or CUDA rows on a
    machine without a GPU)."""
    if not plan.runs_here(wildcards.device):
        return {}
    artifacts = {
        size: plan.export_path(
            plan.backend_of(config, wildcards.format),
            wildcards.precision,
            wildcards.device,
            size,
        )
        for size in config["image_sizes"]
    }
    return {size: path for size, path in artifacts.items() if path}


def benchmark_inputs(wildcards):
    artifacts = sorted(set(benchmark_artifacts(wildcards).values()))
    return {
        "weights": rules.model.output.weights,
        "model": rules.model.output.provenance,
        "manifest": rules.images.output.manifest,
        "references": list(OWN["references"].values()),
        "artifacts": artifacts,
        "provenances": [paths.provenance(path) for path in artifacts],
    }


def benchmark_outputs(device):
    return expand(
        paths.RESULTS,
        host="{host}",
        format="{format}",
        device="{device}",
        precision="{precision}",
        size=config["image_sizes"],
        loader=plan.loaders_for(config, device),
        batch=plan.batch_sizes(config, device),
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
        {size for device in devices for size in plan.batch_sizes(config, device)}
    )


def job_cores(device):
    """The cores one benchmark job runs on: the CPU rows' set, or one GPU's share of the CUDA jobs' set (the job
    pins itself to the share of the GPU it claims)."""
    if device == "cpu":
        return CORES["cpu"]
    return hardware.gpu_slices(CORES["cuda"], len(gpus.candidates()))[0]


def job_threads(wildcards):
    """What a benchmark job claims of Snakemake's cores: a CUDA job its share; a CPU job its own cores where it runs
    beside the CUDA jobs, taking the host in turns (the resource `cpu_rows`, 1 in the profiles, keeps a second CPU
    job off them), else every core (hardware.cpu_job_claim)."""
    if wildcards.device != "cpu":
        return len(job_cores(wildcards.device))
    try:
        total = workflow.cores
    except WorkflowError:  # no --cores: Snakemake schedules no cores of its own
        total = None
    return hardware.cpu_job_claim(
        CORES,
        total if isinstance(total, int) else None,
        config["measurement"]["harness"]["host_turns"],
    )


def loader_workers(device):
    """DataLoader workers of a job: the configured number, at most one fewer than the job's cores."""
    if device == "cpu":
        return config["loader"]["workers"]
    return max(1, min(config["loader"]["cuda_workers"], len(job_cores(device)) - 1))


def report_results():
    """This machine's result JSONs, and every other machine's found under the results directory."""
    return [path for job in OWN["results"] for path in job] + FOREIGN


def report_exports():
    """Every export this machine's rows ran (none for CUDA rows on a machine without a GPU)."""
    return OWN["exports"]


def report_export_provenance():
    """What each export of report_exports() wrote about it."""
    return [paths.provenance(path) for path in OWN["exports"]]
