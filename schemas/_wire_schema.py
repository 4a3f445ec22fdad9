"""JSON Schemas (draft-07) of our models: the outbound ones as we serialize them (closed),
the tolerant inbound ones as the platform sends the body (open). Private to `schemas`.

Draft-07 with `definitions`, not pydantic's 2020-12 `$defs`: the schema registry's JSON
Schema support (Apicurio 3.0's compatibility checker) refuses a 2020-12 `$schema`, and the
AsyncAPI schema format is a superset of draft-07.

An inbound schema describes the wire: camelCase names, every name a field is accepted under
(`roomId` and `imRoomId`), a required field satisfied by any of its names, `token` absent
(the ingress removes it), no defaults (ours, not the platform's), `additionalProperties`
open. It gives the documented types; a body whose field has another type is still stored
as sent, and our models read such a field as null.
"""

from __future__ import annotations

import typing
from typing import Any

from pydantic import AliasChoices, BaseModel

__all__ = ["DRAFT_07", "REF_PREFIX", "inbound_schema", "outbound_schema", "rebase_refs"]

DRAFT_07 = "http://json-schema.org/draft-07/schema#"
REF_PREFIX = "#/definitions/"
_REF_TEMPLATE = REF_PREFIX + "{model}"
_SECRET_FIELDS = frozenset({"token"})


def _draft07(schema: dict[str, Any]) -> dict[str, Any]:
    definitions = schema.pop("$defs", None)
    out: dict[str, Any] = {"$schema": DRAFT_07, **schema}
    if definitions:
        out["definitions"] = definitions
    return out


def outbound_schema(model: type[BaseModel]) -> dict[str, Any]:
    """The schema of `model`'s JSON as we serialize it (`model_dump_json`)."""
    return _draft07(model.model_json_schema(mode="serialization", ref_template=_REF_TEMPLATE))


def _nested_models(annotation: Any) -> list[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    found: list[type[BaseModel]] = []
    for arg in typing.get_args(annotation):
        found += _nested_models(arg)
    return found


def _models_of(model: type[BaseModel]) -> dict[str, type[BaseModel]]:
    """`model` and every model its fields hold, by name (pydantic's definition names)."""
    found = {model.__name__: model}
    for field in model.model_fields.values():
        for nested in _nested_models(field.annotation):
            if nested.__name__ not in found:
                found |= _models_of(nested)
    return found


def _wire_names(alias: Any, primary: str) -> list[str]:
    if isinstance(alias, AliasChoices):
        return [c for c in alias.choices if isinstance(c, str)]
    return [primary]


def _to_wire(model: type[BaseModel], obj: dict[str, Any]) -> None:
    """Rewrite one object schema of an inbound model in place (see the module docstring)."""
    properties: dict[str, Any] = obj.get("properties", {})
    required: list[str] = obj.get("required", [])
    for prop in properties.values():
        prop.pop("title", None)
        prop.pop("default", None)
    either: list[dict[str, Any]] = []
    for name, field in model.model_fields.items():
        if name in _SECRET_FIELDS:
            continue
        primary = field.alias or name
        if isinstance(field.validation_alias, AliasChoices):
            primary = _wire_names(field.validation_alias, primary)[0]
        names = _wire_names(field.validation_alias, primary)
        for other in names[1:]:
            prop = dict(properties[primary])
            prop["description"] = f"another name of `{primary}`"
            properties[other] = prop
        if primary in required and len(names) > 1:
            required.remove(primary)
            either.append({"anyOf": [{"required": [n]} for n in names]})
    for secret in _SECRET_FIELDS:
        properties.pop(secret, None)
        if secret in required:
            required.remove(secret)
    if not required:
        obj.pop("required", None)
    if len(either) == 1:
        obj.update(either[0])
    elif either:
        obj["allOf"] = either
    obj["additionalProperties"] = True


def inbound_schema(model: type[BaseModel], wrapper: str | None = None) -> dict[str, Any]:
    """The schema of a body `model` parses, as sent. With `wrapper`, the fields come either
    inside an object under that key (`{"data": {...}}`) or at the top level."""
    schema = model.model_json_schema(mode="validation", by_alias=True, ref_template=_REF_TEMPLATE)
    definitions: dict[str, Any] = schema.pop("$defs", {})
    for name, nested in _models_of(model).items():
        if nested is not model:
            _to_wire(nested, definitions[name])
    _to_wire(model, schema)
    if wrapper is None:
        return _draft07(schema | ({"$defs": definitions} if definitions else {}))
    title = schema.pop("title")
    description = schema.pop("description", "")
    definitions[f"{title}Fields"] = schema
    ref = {"$ref": _REF_TEMPLATE.format(model=f"{title}Fields")}
    root = {
        "title": title,
        "description": description,
        "type": "object",
        "anyOf": [
            {
                "description": f"the fields wrapped in `{wrapper}`",
                "required": [wrapper],
                "properties": {wrapper: ref},
            },
            {"description": "the fields at the top level", "allOf": [ref]},
        ],
        "$defs": definitions,
    }
    return _draft07(root)


def rebase_refs(schema: Any, prefix: str) -> Any:
    """A copy of `schema` whose local `#/definitions/X` references point to `prefix + X`."""
    if isinstance(schema, dict):
        out = {k: rebase_refs(v, prefix) for k, v in schema.items()}
        ref = out.get("$ref")
        if isinstance(ref, str) and ref.startswith(REF_PREFIX):
            out["$ref"] = prefix + ref[len(REF_PREFIX) :]
        return out
    if isinstance(schema, list):
        return [rebase_refs(v, prefix) for v in schema]
    return schema
