"""The study as the Snakefile sees it: the config checked, and the jobs and files it asks for.

Where files go is `paths`; what reruns a job besides its inputs is `triggers`.
Light on purpose (no torch): the Snakefile imports it on every invocation.
"""
from __future__ import annotations

import difflib
import math
import os
import re
from collections.abc import Hashable
from dataclasses import dataclass
from pathlib import Path

from fmtbench import backends, data, hardware, model, paths
from fmtbench.backends.base import FormatSpec, option_problem


class ConfigError(ValueError):
    """A configuration value that the JSON schema cannot express; the message names the key."""


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


def _resolve(schema: dict, root: dict) -> dict:
    while "$ref" in schema:
        schema = root["$defs"][schema["$ref"].rsplit("/", 1)[1]]
    return schema


def _scalar(text: str, types: set[str]):
    """A --config string turned into the non-string type the schema asks for, if it parses as one."""
    import yaml
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError:
        return text
    if value is None and "null" in types:
        return None
    if isinstance(value, bool):
        return value if "boolean" in types else text
    if isinstance(value, int) and types & {"integer", "number"}:
        return value
    if isinstance(value, float) and ("number" in types or ("integer" in types and value.is_integer())):
        return value
    return text


def coerce(value, schema: dict, root: dict | None = None):
    """Snakemake parses `--config` lists and mappings with YAML's BaseLoader: every scalar in them is a
    string. Turn those strings into the types the config schema asks for, where the schema admits no string."""
    root = root or schema
    schema = _resolve(schema, root)
    if isinstance(value, dict):
        properties = schema.get("properties", {})
        extra = schema.get("additionalProperties")
        return {key: coerce(item, properties.get(key, extra if isinstance(extra, dict) else {}), root)
                for key, item in value.items()}
    if isinstance(value, list):
        return [coerce(item, schema.get("items", {}), root) for item in value]
    types = schema.get("type", [])
    types = {types} if isinstance(types, str) else set(types)
    if isinstance(value, str) and types and "string" not in types:
        value = _scalar(value, types)
    if isinstance(value, float) and value.is_integer() and "integer" in types and "number" not in types:
        return int(value)  # `batch_sizes: [2.0]`: the integer meant (JSON schema's integer admits 2.0 as is)
    return value


def _key_on_line(lines: list[str], line: int) -> str:
    """The key written on a line of a YAML file (0-based), quoted for a message, or '' where it holds none."""
    text = lines[line].strip() if 0 <= line < len(lines) else ""
    key = text.lstrip("-").strip().split(":", 1)[0].strip().strip("'\"") if ":" in text else ""
    return f"key {key!r}: " if key and not key.startswith("#") else ""


def _unique_keys_loader():
    """PyYAML's safe loader, refusing a key written twice in one mapping (YAML keeps the last one silently)."""
    import yaml

    class UniqueKeys(yaml.SafeLoader):
        def construct_mapping(self, node, deep=False):
            seen = {}
            for key_node, _ in node.value:
                key = self.construct_object(key_node, deep=True)
                if isinstance(key, Hashable) and key in seen:
                    raise _WrittenTwice(key, [seen[key], key_node.start_mark.line])
                seen[key] = key_node.start_mark.line
            return super().construct_mapping(node, deep)
    return UniqueKeys


class _WrittenTwice(Exception):
    def __init__(self, key, lines: list[int] | None = None):
        super().__init__(key)
        self.key, self.lines = key, lines


def _unique_pairs(pairs):
    keys = [key for key, _ in pairs]
    twice = next((key for key in keys if keys.count(key) > 1), None)
    if twice is not None:
        raise _WrittenTwice(twice)
    return dict(pairs)


def check_config_file(path: str | os.PathLike) -> None:
    """A config file read as Snakemake reads it (JSON, else YAML), refused in one line naming the file, the line and
    the key where it is not one mapping of unique keys: a key written twice (whose first value YAML drops
    silently), a TAB in the indentation, text that is not YAML at all. (Snakemake reads the files given with
    `--configfile` before the Snakefile runs, and reports their syntax errors itself, without file or line.)"""
    import json

    import yaml
    path = str(path)
    raw = Path(path).read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        line = raw[:err.start].count(b"\n") + 1
        raise ConfigError(f"{path}:{line}: not a text file (byte {raw[err.start]:#04x} is not UTF-8): a config file "
                          "is YAML or JSON") from None
    lines = text.splitlines()
    try:
        try:
            loaded = json.loads(text, object_pairs_hook=_unique_pairs)
        except _WrittenTwice as twice:  # where JSON has no line numbers: the lines that write the key
            twice.lines = [i for i, row in enumerate(lines) if re.search(rf'"{re.escape(twice.key)}"\s*:', row)]
            raise
        except ValueError:
            loaded = yaml.load(text, Loader=_unique_keys_loader())  # noqa: S506 - a SafeLoader subclass
    except _WrittenTwice as twice:
        *first, last = twice.lines or [0]
        also = f" (also on line {first[-1] + 1})" if first else ""
        raise ConfigError(f"{path}:{last + 1}: key {twice.key!r} is written twice in one mapping{also}; the last one "
                          "would win silently: remove one") from None
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark
        line = mark.line if mark is not None else 0
        tab = mark is not None and "'\\t'" in str(err.problem)
        what = ("a TAB in the indentation: YAML indents with spaces" if tab
                else f"not valid YAML ({err.problem}" + (f" {err.context}" if err.context else "") + ")")
        raise ConfigError(f"{path}:{line + 1}: {_key_on_line(lines, line)}{what}") from None
    if loaded is not None and not isinstance(loaded, dict):
        raise ConfigError(f"{path}:1: holds a {type(loaded).__name__}, not a mapping of config keys "
                          "(host_label, model, formats, ...)")


def use_backend_modules(config: dict) -> None:
    """Formats from outside the package (`backend_modules`), for this process and every process it starts."""
    try:
        backends.use_modules(config["backend_modules"])
    except (backends.UnknownFormat, TypeError) as err:
        raise ConfigError(str(err)) from None


def unknown_keys(value, schema: dict, root: dict | None = None, where: str = "") -> None:
    """A key the schema does not have (a typo): named with the closest valid one, before the schema's own
    message (which prints the whole schema and config after it)."""
    root = root or schema
    schema = _resolve(schema, root)
    if not isinstance(value, dict):
        if isinstance(value, list):
            for index, item in enumerate(value):
                unknown_keys(item, schema.get("items", {}), root, f"{where}[{index}]")
        return
    properties = schema.get("properties", {})
    extra = schema.get("additionalProperties")
    for key, item in value.items():
        path = f"{where}.{key}" if where else str(key)
        if key in properties:
            unknown_keys(item, properties[key], root, path)
        elif extra is False:
            close = difflib.get_close_matches(str(key), list(properties), n=1, cutoff=0.6)
            hint = f"; did you mean {close[0]!r}?" if close else f"; valid keys: {', '.join(properties)}"
            raise ConfigError(f"{path}: unknown key{hint}")
        elif isinstance(extra, dict):
            unknown_keys(item, extra, root, path)


def key_path(path) -> str:
    """`formats.torch.cuda[0]` from a sequence of keys and list indices."""
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def short(value, limit: int = 40) -> str:
    """A value as a config message quotes it, cut short (a 5,000-character string must not drown its key)."""
    if isinstance(value, str) and len(value) > limit:
        return repr(value[:limit]).rstrip("'\"") + "…" + repr(value)[0]
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "…"


def leaves(value, path=()):
    """(path, value) of every scalar in a config."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield from leaves(item, (*path, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from leaves(item, (*path, index))
    else:
        yield path, value


def non_finite(config: dict) -> None:
    """`.inf` and `.nan` anywhere (JSON schema compares nan with nothing, and `maximum` is all that refuses inf)."""
    for path, value in leaves(config):
        if isinstance(value, float) and not math.isfinite(value):
            raise ConfigError(f"config: {key_path(path)}: {value} is not a finite number")


def _schema_message(error) -> str:
    """One line for a jsonschema error: where, then what, with the offending value cut short."""
    kind, expected = error.validator, error.validator_value
    if kind == "enum":
        what = f"{short(error.instance)} is not one of {', '.join(map(str, expected))}"
    elif kind == "type":
        types = expected if isinstance(expected, list) else [expected]
        what = f"{short(error.instance)} is not of type {' or '.join(types)}"
    else:
        what = error.message.replace(repr(error.instance), short(error.instance))
        what = " ".join(what.split())
        what = what if len(what) <= 200 else what[:200] + "…"
    where = key_path(error.absolute_path)
    return f"config: {where}: {what}" if where else f"config: {what}"


def schema_problem(config: dict, schema: dict) -> str | None:
    """jsonschema's best match among the config's errors as one line, then the others (at most 5), one a line;
    None if the config is valid."""
    from jsonschema.exceptions import best_match
    from jsonschema.validators import validator_for
    errors = list(validator_for(schema)(schema).iter_errors(config))
    if not errors:
        return None
    first = best_match(errors)
    others = [_schema_message(error) for error in errors if error is not first][:5]
    return "\n".join([_schema_message(first), *(f"  also {line}" for line in others)])


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


def row_names(config: dict) -> list[str]:
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
    return _scalar(value, {"null", "boolean", "number"}) if isinstance(value, str) else value


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

