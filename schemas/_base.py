"""Base classes of the inbound (tolerant) and outbound (strict) models. Private to `schemas`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, TypeVar

from pydantic import BaseModel, ConfigDict, GetCoreSchemaHandler, ValidationError
from pydantic.alias_generators import to_camel
from pydantic_core import CoreSchema, core_schema

__all__ = ["Inbound", "Lenient", "Outbound", "valid_items"]

T = TypeVar("T")
M = TypeVar("M", bound=BaseModel)


class _NoneOnError:
    """Validation of the annotated type falls back to None on error, inside pydantic-core
    (no Python call per field: these models parse every callback on the hot path)."""

    def __get_pydantic_core_schema__(
        self, source: Any, handler: GetCoreSchemaHandler
    ) -> CoreSchema:
        return core_schema.with_default_schema(handler(source), default=None, on_error="default")


Lenient = Annotated[T | None, _NoneOnError()]
"""An optional field that becomes None instead of failing when the platform sends junk.

The raw body travels on the topic unchanged, so nothing is lost by not parsing a field.
"""


def valid_items(model: type[M]) -> Callable[[Any], list[M]]:
    """A before-validator for a list of `model` objects that keeps the entries that
    validate and drops the others, so one bad element (a member without an id, a junk
    action) does not lose the rest; a single object where a list is expected counts as a
    one-element list, anything else as an empty one."""

    def clean(value: Any) -> list[M]:
        if isinstance(value, dict):
            value = [value]
        if not isinstance(value, list):
            return []
        kept: list[M] = []
        for item in value:
            try:
                kept.append(model.model_validate(item))
            except ValidationError:
                continue
        return kept

    return clean


class Inbound(BaseModel):
    """A platform callback: camelCase on the wire, unknown fields kept, numbers as strings ok."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="allow",
        frozen=True,
        coerce_numbers_to_str=True,
    )


class Outbound(BaseModel):
    """An event we publish: snake_case, closed, validated on construction."""

    model_config = ConfigDict(extra="forbid", frozen=True)
