"""The study as the Snakefile sees it: the config checked, and the jobs and files it asks for.

The config as written (its file, `--config` strings, unknown keys, the JSON schema's messages) is `configcheck`;
where files go is `paths`; what reruns a job besides its inputs is `triggers`.
Light on purpose (no torch): the Snakefile imports it on every invocation.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from fmtbench import backends, data, model, paths
from fmtbench.backends.base import FormatSpec, option_problem
from fmtbench.workflow import hardware
from fmtbench.workflow.configcheck import ConfigError, coerce, non_finite, scalar, schema_problem, unknown_keys


def available_formats() -> tuple[str, ...]:
    return backends.names()


def spec(format_name: str) -> FormatSpec:
    try:
        return backends.spec(format_name)
    except backends.UnknownFormat:
        raise ConfigError(f"formats.{format_name}: unknown format; known formats: "
                          f"{', '.join(available_formats())}") from None


@dataclass(frozen=True)
class Job:
    """One benchmark job: every image size, batch size and loader of one (format, device, precision). One job
    per row kind, not per image size: a job's fixed cost (the libraries' imports, the environment, the GPU
    claim) is paid once for all its sizes."""
    format: str
    device: str
    precision: str
    sizes: tuple[int, ...]

    @property
    def wildcards(self) -> dict:
        return {"format": self.format, "device": self.device, "precision": self.precision}


def use_backend_modules(config: dict) -> None:
    """Formats from outside the package (`backend_modules`), for this process and every process it starts."""
    try:
        backends.use_modules(config["backend_modules"])
    except (backends.UnknownFormat, TypeError) as err:
        raise ConfigError(str(err)) from None


def check(config: dict, schema_path: str | os.PathLike) -> dict:
    """Everything the Snakefile does to a config before planning: `--config` strings typed, unknown keys
    named, non-finite numbers refused, the JSON schema (its best-matching error as the first line), its defaults
    filled in, then the checks it cannot express. Raises ConfigError, naming the key on the first line."""
    import yaml
    from snakemake.utils import validate as validate_schema
    schema = yaml.safe_load(Path(schema_path).read_text())
    config.update(coerce(config, schema))
    unknown_keys(config, schema)
    non_finite(config)
    problem = schema_problem(config, schema)
    if problem:
        raise ConfigError(problem)
    validate_schema(config, str(schema_path))  # fills in the schema's defaults (the config is valid by now)
    weights_setting(config["model"])
    use_backend_modules(config)
    validate(config)
    return config


def weights_setting(model_config: dict) -> None:
    """`model.weights` as the model rule takes it (torchvision's names for the ImageNet weights are `imagenet`), or
    refused naming the key before Snakemake looks for a file of that name."""
    problem = model.setting_problem(model_config["weights"])
    if problem:
        raise ConfigError(f"config: model.weights: {problem}")
    model_config["weights"] = model.setting(model_config["weights"])


def backend_of(config: dict, name: str) -> str:
    """The backend module behind a row name: a format itself, or the format a variant is built on."""
    variant = config["variants"].get(name)
    return variant["format"] if variant else name


def format_names(config: dict) -> list[str]:
    return [*available_formats(), *config["variants"]]


def _check_options(where: str, backend: str, options: dict) -> None:
    unknown = set(options) - set(spec(backend).options)
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(sorted(unknown))} for {backend}; "
                          f"known: {', '.join(sorted(spec(backend).options)) or 'none'}")
    for key, value in options.items():
        problem = option_problem(spec(backend), key, _option_value(value))
        if problem:
            raise ConfigError(f"{where}.{key}: {problem}")


def validate(config: dict) -> None:
    """Checks beyond the JSON schema: format names, devices, baseline and per-format option keys."""
    for name, variant in config["variants"].items():
        if name in available_formats():
            raise ConfigError(f"variants.{name}: the name of a format; give the variant a name of its own")
        spec(variant["format"])
        _check_options(f"variants.{name}.options", variant["format"], variant["options"])
    for name, devices in config["formats"].items():
        format_spec = spec(backend_of(config, name))
        for device, precisions in devices.items():
            if device not in format_spec.devices:
                raise ConfigError(f"formats.{name}.{device}: {name} does not run on {device} "
                                  f"(it runs on {', '.join(format_spec.devices)})")
            for precision in precisions:
                if precision not in format_spec.precisions:
                    raise ConfigError(f"formats.{name}.{device}: {name} has no {precision} "
                                      f"(it has {', '.join(format_spec.precisions)})")
    for name, options in config["options"].items():
        _check_options(f"options.{name}", name, options)
    baseline = config["baseline"]
    spec(backend_of(config, baseline["format"]))
    if not any(job.format == baseline["format"] and job.precision == baseline["precision"] for job in jobs(config)):
        raise ConfigError(f"baseline: {baseline['format']} {baseline['precision']} is not measured by this study "
                          f"(formats.{baseline['format']} has no {baseline['precision']} row): every speedup would "
                          "be n/a; add it to formats or choose another baseline")
    for name in config["loaders"]:
        if name not in data.LOADERS:
            raise ConfigError(f"loaders: unknown loader {name!r}; known loaders: {', '.join(data.LOADERS)}")
    if not any(loaders_for(config, job.device) for job in jobs(config)):
        raise ConfigError("loaders: no configured loader runs on any configured device "
                          f"({', '.join(config['loaders'])}): the study would measure nothing")


def _option_value(value):
    """`--config options=...` values arrive as strings: 'true', '3', 'null' mean what they say."""
    return scalar(value, {"null", "boolean", "number"}) if isinstance(value, str) else value


def format_options(config: dict, name: str) -> dict:
    """A row's settings: the backend's defaults, then `options.<backend>`, then the variant's own."""
    backend = backend_of(config, name)
    chosen = {**config["options"].get(backend, {}),
              **config["variants"].get(name, {}).get("options", {})}
    return {**spec(backend).options, **{key: _option_value(value) for key, value in chosen.items()}}


def jobs(config: dict) -> list[Job]:
    return [Job(fmt, device, precision, tuple(config["image_sizes"]))
            for fmt, devices in config["formats"].items()
            for device, precisions in devices.items()
            for precision in precisions]


def host(config: dict) -> str:
    return hardware.host_tag(config["host_label"])


def loaders_for(config: dict, device: str) -> list[str]:
    return data.loaders_for(config["loaders"], device)


def batch_sizes(config: dict, device: str) -> list[int]:
    """The batch sizes of one device's rows: `batch_sizes_by_device.<device>`, else `batch_sizes`."""
    return list(config["batch_sizes_by_device"].get(device) or config["batch_sizes"])


def result_paths(config: dict, job: Job, host_tag: str | None = None) -> list[str]:
    return [paths.RESULTS.format(host=host_tag or host(config), size=size, loader=loader, batch=batch,
                                 **job.wildcards)
            for size in job.sizes
            for batch in batch_sizes(config, job.device) for loader in loaders_for(config, job.device)]


def export_keys(format_name: str, device: str, size: int | str) -> tuple[str, str]:
    """The (device, size) fields of an export path: 'any' where the artifact does not depend on them."""
    artifact = spec(format_name).artifact
    return (device if artifact.per_device else paths.ANY, str(size) if artifact.per_image_size else paths.ANY)


def export_path(format_name: str, precision: str, device: str, size: int | str) -> str | None:
    artifact = spec(format_name).artifact
    if artifact is None:
        return None
    export_device, export_size = export_keys(format_name, device, size)
    return paths.EXPORT.format(format=format_name, precision=precision, device=export_device, size=export_size,
                               ext=artifact.ext)


def formats_with_artifact(kind: str) -> list[str]:
    """Formats whose export writes a file (kind "file") or a directory (kind "directory")."""
    return [name for name in available_formats() if spec(name).artifact and spec(name).artifact.kind == kind]


def has_cuda_rows(config: dict) -> bool:
    """Whether this study will time anything on a GPU here (then cores are split between the kinds of job)."""
    return hardware.gpu_fingerprint() != hardware.NO_CUDA and any(job.device == "cuda" for job in jobs(config))


def runs_here(device: str) -> bool:
    """CUDA rows of a machine without a GPU are written as unavailable: nothing is exported for them."""
    return device != "cuda" or hardware.gpu_fingerprint() != hardware.NO_CUDA


def own_files(config: dict, jobs_: list[Job], host_tag: str) -> dict[str, list[str]]:
    """This machine's result JSONs, exports and reference logits: what integrity.repair checks."""
    exports = {path for job in jobs_ if runs_here(job.device) for size in job.sizes
               if (path := export_path(backend_of(config, job.format), job.precision, job.device, size))}
    return {"results": [result_paths(config, job, host_tag) for job in jobs_],  # per job
            "exports": sorted(exports),
            "references": {size: paths.REFERENCE.format(size=size) for size in config["image_sizes"]}}

