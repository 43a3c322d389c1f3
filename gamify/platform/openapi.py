"""OpenAPI for bodies the handlers decode themselves.

A handler that decodes its own body (the award endpoint does, event by event, so that a 400
names every bad field) leaves Litestar nothing to infer a schema from; its msgspec Struct
describes the body instead, through `body_operation`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, cast

import msgspec
from litestar.openapi.spec import OpenAPIMediaType, Operation, RequestBody, Schema


def inline_schema(kind: Any) -> dict[str, Any]:
    """msgspec's JSON Schema for `kind` with every (non-recursive) `$ref` inlined, so that it
    can sit inside an operation without registering components."""
    schema = msgspec.json.schema(kind)
    definitions = schema.pop("$defs", {})

    def resolve(node: Any) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/$defs/"):
                return resolve(definitions[ref.removeprefix("#/$defs/")])
            return {key: resolve(value) for key, value in node.items()}
        if isinstance(node, list):
            return [resolve(item) for item in node]
        return node

    resolved: dict[str, Any] = resolve(schema)
    return resolved


def body_operation(kind: Any) -> type[Operation]:
    """An operation class for Litestar's `operation_class` whose JSON body is `kind`."""
    schema = cast(Schema, inline_schema(kind))

    @dataclass
    class BodyOperation(Operation):
        def __post_init__(self) -> None:
            self.request_body = RequestBody(
                required=True, content={"application/json": OpenAPIMediaType(schema=schema)}
            )

    return BodyOperation
