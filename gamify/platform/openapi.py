"""OpenAPI that says what the service does: problem+json errors, and self-decoded bodies.

Every error is an RFC 9457 problem (`problems.py`), but Litestar documents the 400 it infers as
its own `{status_code, detail, extra}` JSON and knows no other error. `ProblemOperation` (a
handler's `operation_class`) documents each error response as `application/problem+json` with
the `Problem` schema, plus a `default` one for the statuses a request may meet on its way
(401, 403, 404, 409, 413, 429, 503).

A handler that decodes its own body (so that a 400 names every bad field, see `decoding.py`)
leaves Litestar nothing to infer a schema from; its msgspec Struct describes the body instead,
through `body_operation`.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast, get_args

import msgspec
from litestar.openapi.spec import (
    OpenAPIMediaType,
    OpenAPIResponse,
    Operation,
    RequestBody,
    Responses,
    Schema,
)

from gamify.platform.problems import MEDIA_TYPE, Problem

_ERROR_DESCRIPTION = (
    "An error, as an RFC 9457 problem (`errors` is empty but for a 400; quote `request_id`)"
)
_INVALID = "Invalid request: `errors` names every bad field (a body path or a parameter name)"


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
            # A discriminator's mapping names $defs, gone once inlined; each alternative's
            # tag is an enum of one value, which tells them apart as well.
            return {key: resolve(value) for key, value in node.items() if key != "discriminator"}
        if isinstance(node, list):
            return [resolve(item) for item in node]
        return node

    resolved: dict[str, Any] = resolve(schema)
    return resolved


def problem_schema() -> dict[str, Any]:
    """`Problem` as it is on the wire: a member that cannot be UNSET is always there (the
    Struct encodes its defaults), so `type` and `errors` are required like `title`."""
    schema = inline_schema(Problem)
    schema["required"] = [
        field.encode_name
        for field in msgspec.structs.fields(Problem)
        if msgspec.UnsetType not in get_args(field.type)
    ]
    return schema


_PROBLEM = OpenAPIResponse(
    description=_ERROR_DESCRIPTION,
    content={MEDIA_TYPE: OpenAPIMediaType(schema=cast(Schema, problem_schema()))},
)


def problem_responses(responses: Responses | None, *, takes_body: bool) -> Responses:
    """`responses` with every error one a problem, and a `default` problem for the rest; a
    400 is listed whenever the request has a body or parameters to be wrong."""
    documented = dict(responses or {})
    if takes_body:
        documented.setdefault("400", OpenAPIResponse(_INVALID))
    for status, response in documented.items():
        if status[:1] in ("4", "5") and isinstance(response, OpenAPIResponse):
            description = _INVALID if status == "400" else response.description
            documented[status] = OpenAPIResponse(description, content=_PROBLEM.content)
    documented["default"] = _PROBLEM
    return documented


@dataclass
class ProblemOperation(Operation):
    """An operation whose error responses are documented as the problems they are."""

    def __post_init__(self) -> None:
        self.responses = problem_responses(self.responses, takes_body=False)


def body_operation(kind: Any) -> type[Operation]:
    """An operation class for Litestar's `operation_class` whose JSON body is `kind` (and whose
    errors are problems, as with ProblemOperation)."""
    return schema_operation(lambda: inline_schema(kind))


def schema_operation(make_schema: Callable[[], dict[str, Any]]) -> type[Operation]:
    """`body_operation` for a schema made by `make_schema`, which runs once, when the OpenAPI
    document is first built rather than when the handler is declared."""
    schema = functools.cache(make_schema)

    @dataclass
    class BodyOperation(Operation):
        def __post_init__(self) -> None:
            self.responses = problem_responses(self.responses, takes_body=True)
            self.request_body = RequestBody(
                required=True,
                content={"application/json": OpenAPIMediaType(schema=cast(Schema, schema()))},
            )

    return BodyOperation
