"""Base classes of the inbound (tolerant) and outbound (strict) models. Private to `schemas`."""

from __future__ import annotations

from typing import Annotated, Any, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError, ValidatorFunctionWrapHandler
from pydantic.alias_generators import to_camel
from pydantic.functional_validators import WrapValidator

__all__ = ["Inbound", "Lenient", "Outbound"]

T = TypeVar("T")


def _none_on_error(value: Any, handler: ValidatorFunctionWrapHandler) -> Any:
    try:
        return handler(value)
    except ValidationError:
        return None


Lenient = Annotated[T | None, WrapValidator(_none_on_error)]
"""An optional field that becomes None instead of failing when the platform sends junk.

The raw body travels on the topic unchanged, so nothing is lost by not parsing a field.
"""


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
