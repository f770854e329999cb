"""The config as written, before the study reads it: the file read as Snakemake reads it (`check_config_file`),
`--config` strings typed (`coerce`), unknown keys named, non-finite numbers refused, and the JSON schema's errors
as one line each (`schema_problem`). Each problem is a `ConfigError` naming the key. The study's own checks and its
plan are `plan`.
"""
from __future__ import annotations

import difflib
import math
import os
import re
from collections.abc import Hashable
from pathlib import Path


class ConfigError(ValueError):
    """A configuration value that the JSON schema cannot express; the message names the key."""


def _resolve(schema: dict, root: dict) -> dict:
    while "$ref" in schema:
        schema = root["$defs"][schema["$ref"].rsplit("/", 1)[1]]
    return schema


def scalar(text: str, types: set[str]):
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
        value = scalar(value, types)
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
