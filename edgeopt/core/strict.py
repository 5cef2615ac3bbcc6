"""The base of every user-facing config model: unknown keys are errors and YAML `true` is never a number.

Pydantic accepts `ratio: true` as 1.0 and drops unknown keys unless told otherwise; both turn a typo into a
run that silently does something else. Configs of every wing (steps, training, the sweep) derive from
StrictModel, so the rule holds at every level of nesting.
"""
from __future__ import annotations

import typing
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationInfo, field_validator
from pydantic_core import PydanticCustomError


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid")

    def changed_fields(self) -> set[str]:
        """Fields whose value differs from the default: what a user chose. Unlike model_fields_set, it survives
        a model_dump -> model_validate round trip (a build node's parameters have every field set)."""
        return {name for name, info in type(self).model_fields.items()
                if not info.is_required() and getattr(self, name) != info.get_default(call_default_factory=True)}

    @field_validator("*", mode="before")
    @classmethod
    def _no_bool_as_number(cls, value: Any, info: ValidationInfo) -> Any:
        if isinstance(value, bool) and info.field_name:
            field = cls.model_fields[info.field_name]
            if _numeric(field.annotation):
                raise PydanticCustomError("bool_not_number", "expected {expected}, got {given} (bool)",
                                          {"expected": _expected(field), "given": str(value).lower()})
        return value


def _numeric(annotation: Any) -> bool:
    """int or float, possibly optional; not a union that also accepts bool."""
    args = typing.get_args(annotation) or (annotation,)
    return any(a in (int, float) for a in args) and bool not in args


def _expected(field) -> str:
    """'a number between 0 and 1', 'an integer >= 1', ... from the field's type and bounds."""
    kind = "an integer" if int in (typing.get_args(field.annotation) or (field.annotation,)) else "a number"
    bounds = {name: getattr(m, name) for m in field.metadata for name in ("gt", "ge", "lt", "le")
              if hasattr(m, name)}
    low = bounds.get("gt", bounds.get("ge"))
    high = bounds.get("lt", bounds.get("le"))
    if low is not None and high is not None:
        return f"{kind} between {low} and {high}"
    if low is not None:
        return f"{kind} {'>' if 'gt' in bounds else '>='} {low}"
    if high is not None:
        return f"{kind} {'<' if 'lt' in bounds else '<='} {high}"
    return kind
