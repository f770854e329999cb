"""Frozen dataclasses as JSON records: `to_json`, `from_json` and the JSON schema, from one field list.

A field's annotation gives its JSON type (int, float, bool, str, dict, `list[X]`, `dict[str, X]`, a dataclass,
`X | None`, a union of dataclasses), its metadata (`doc(...)`) the description and bounds. Every field is
required unless it is `omitted` when None (a key that some rows do not have, as opposed to one that is null).
Reading is lenient where files of other machines or older versions may lack a key (it becomes None); the
schema is strict, and validating against it says what is wrong with a file.
"""
from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from functools import cache
from typing import Any

_JSON_TYPES = {int: "integer", float: "number", bool: "boolean", str: "string"}


def doc(text: str, *, omitted: bool = False, default=dataclasses.MISSING, **schema):
    """A field with a description and JSON-schema bounds (`minimum=0`, `enum=[...]`, ...). `omitted`: the key is
    left out of the JSON when the value is None (and not required by the schema)."""
    metadata = {"description": text, "omitted": omitted, **schema}
    if omitted and default is dataclasses.MISSING:
        default = None
    return field(default=default, metadata=metadata)


@cache
def _hints(cls) -> dict:
    return typing.get_type_hints(cls)


def _options(kind) -> tuple[list, bool]:
    """(the non-None members of a union or optional type, whether None is one of them)."""
    if typing.get_origin(kind) in (typing.Union, types.UnionType):
        members = list(typing.get_args(kind))
        return [m for m in members if m is not type(None)], type(None) in members
    return [kind], False


def to_json(value) -> Any:
    """A dataclass (or a list or dict of them) as plain JSON values; `omitted` fields that are None are left out."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        out = {}
        for item in dataclasses.fields(value):
            inner = getattr(value, item.name)
            if inner is None and item.metadata.get("omitted"):
                continue
            out[item.name] = to_json(inner)
        return out
    if isinstance(value, (list, tuple)):
        return [to_json(v) for v in value]
    if isinstance(value, dict):
        return {key: to_json(v) for key, v in value.items()}
    return value


def _from(kind, value):
    if value is None:
        return None
    options, _ = _options(kind)
    classes = [option for option in options if dataclasses.is_dataclass(option)]
    if classes:
        if len(classes) == 1 or not isinstance(value, dict):
            return from_json(classes[0], value)
        keys = set(value)

        def fit(cls) -> tuple[int, int]:
            # a union of records: the one that leaves the fewest of the value's keys unplaced (an older file may hold
            # a key its record has since dropped), then the one with the fewest extra fields
            names = {f.name for f in dataclasses.fields(cls)}
            return len(keys - names), len(names)
        return from_json(min(classes, key=fit), value)
    kind = options[0]
    origin = typing.get_origin(kind)
    if origin is list and isinstance(value, list):
        (inner,) = typing.get_args(kind)
        return [_from(inner, v) for v in value]
    if origin is dict and isinstance(value, dict):
        _, inner = typing.get_args(kind)
        return {key: _from(inner, v) for key, v in value.items()}
    return value


def from_json(cls, value: dict):
    """The record `cls` from its JSON; a missing key reads as None, an unknown one is not kept (validate first
    where that matters)."""
    hints = _hints(cls)
    return cls(**{item.name: _from(hints[item.name], value.get(item.name)) for item in dataclasses.fields(cls)
                  if item.init})


def _schema_of(kind) -> dict:
    options, nullable = _options(kind)
    if len(options) > 1:
        inner = {"anyOf": [_schema_of(option) for option in options]}
    else:
        kind = options[0]
        origin = typing.get_origin(kind)
        if dataclasses.is_dataclass(kind):
            inner = json_schema(kind)
        elif origin is list:
            inner = {"type": "array", "items": _schema_of(typing.get_args(kind)[0])}
        elif origin is dict:
            inner = {"type": "object", "additionalProperties": _schema_of(typing.get_args(kind)[1])}
        elif kind is dict:
            inner = {"type": "object"}
        elif kind is Any:
            inner = {}
        elif kind is type(None):
            inner = {"type": "null"}
        else:
            inner = {"type": _JSON_TYPES[kind]}
    if not nullable:
        return inner
    if set(inner) == {"type"} and isinstance(inner["type"], str):
        return {"type": [inner["type"], "null"]}
    return {"anyOf": [{"type": "null"}, inner]}


def json_schema(cls) -> dict:
    """JSON schema of a record: types from the annotations, descriptions and bounds from each field's metadata
    (bounds apply to the value, not to null). Fields that are `omitted` when None are not required; no other
    key is allowed."""
    hints = _hints(cls)
    properties, required = {}, []
    for item in dataclasses.fields(cls):
        schema = _schema_of(hints[item.name])
        metadata = {key: value for key, value in item.metadata.items() if key != "omitted"}
        description = metadata.pop("description", None)
        if metadata:
            if "anyOf" in schema and schema["anyOf"][0] == {"type": "null"}:
                schema = {"anyOf": [{"type": "null"}, {**schema["anyOf"][1], **metadata}]}
            elif isinstance(schema.get("type"), list):
                schema = {"anyOf": [{"type": "null"}, {"type": schema["type"][0], **metadata}]}
            else:
                schema = {**schema, **metadata}
        if description:
            schema = {**schema, "description": description}
        properties[item.name] = schema
        if not item.metadata.get("omitted"):
            required.append(item.name)
    return {"type": "object", "additionalProperties": False, "required": required, "properties": properties}


def field_names(cls) -> list[str]:
    return [item.name for item in dataclasses.fields(cls)]


__all__ = ["dataclass", "doc", "field_names", "from_json", "json_schema", "to_json"]
