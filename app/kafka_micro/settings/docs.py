"""Documentation of every setting, for ``kafka-micro config --describe``."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated, Literal, NamedTuple, get_args, get_origin

from pydantic import BaseModel

from kafka_micro.settings.schema import Settings


class FieldDoc(NamedTuple):
    """Documentation of one setting."""

    name: str
    description: str
    default: object
    allowed: tuple[object, ...]


def iter_field_docs(model: type[BaseModel] = Settings, prefix: str = "") -> Iterator[FieldDoc]:
    """Every setting with its description, default and allowed values (if a fixed set)."""
    for name, field in model.model_fields.items():
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            yield from iter_field_docs(annotation, f"{prefix}{name}.")
            continue
        yield FieldDoc(
            f"{prefix}{name}",
            field.description or "",
            field.get_default(call_default_factory=True),
            _literal_values(annotation),
        )


def _literal_values(annotation: object) -> tuple[object, ...]:
    while get_origin(annotation) is Annotated:
        annotation = get_args(annotation)[0]
    return get_args(annotation) if get_origin(annotation) is Literal else ()
