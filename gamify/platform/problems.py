"""RFC 9457 problem details for every error the API returns, 404 and 500 included.

Exception handlers of our own rather than Litestar's ProblemDetailsPlugin: the plugin renders
only its own exception (and HTTPException), and its mapping hooks see the exception without
the request, so neither the request id nor the field paths of a 400 could be kept.
"""

from __future__ import annotations

import logging
import re
import secrets
from collections.abc import Mapping
from typing import Any

import asyncpg
import msgspec
from litestar import Request, Response
from litestar.exceptions import HTTPException, ValidationException
from litestar.status_codes import HTTP_500_INTERNAL_SERVER_ERROR
from litestar.types import ExceptionHandlersMap
from msgspec import UNSET, UnsetType
from redis.exceptions import RedisError

from gamify.platform.request_id import request_id_of

log = logging.getLogger(__name__)

MEDIA_TYPE = "application/problem+json"
VALIDATION = "urn:gamify:problem:validation"
# msgspec reports where decoding failed as "... - at `$.events[3].occurred_at`".
_MSGSPEC_PATH = re.compile(r"^(?P<message>.*?)(?: - at `\$(?P<path>[^`]*)`)?$", re.DOTALL)
_MISSING_FIELD = re.compile(r"^Object missing required field `([^`]+)`$")


class FieldProblem(msgspec.Struct, frozen=True):
    field: str
    message: str


class Problem(msgspec.Struct, kw_only=True):
    """An RFC 9457 problem; `errors` names every bad field of a 400, and is empty otherwise."""

    # No omit_defaults: API.md wants `type` and `errors` always present. What may be missing
    # is UNSET, which msgspec leaves out, rather than None, which it would write as null.
    type: str = "about:blank"
    title: str
    status: int
    detail: str | UnsetType = UNSET
    errors: list[FieldProblem] = msgspec.field(default_factory=list)
    request_id: str | UnsetType = UNSET


def _detail(text: str | None) -> str | UnsetType:
    return UNSET if text is None else text


class ApiError(Exception):
    """An error the API answers on purpose, with its status, title and field problems."""

    def __init__(
        self,
        status: int,
        title: str,
        detail: str | None = None,
        *,
        errors: list[FieldProblem] | None = None,
        type: str = "about:blank",
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(detail or title)
        self.problem = Problem(
            type=type, title=title, status=status, detail=_detail(detail), errors=errors or []
        )
        self.headers = dict(headers or {})


def invalid(errors: list[FieldProblem], detail: str | None = None) -> ApiError:
    return ApiError(
        400,
        "Invalid request",
        detail or "; ".join(f"{e.field}: {e.message}" for e in errors),
        errors=errors,
        type=VALIDATION,
    )


def field_problem_from_msgspec(
    error: msgspec.ValidationError | msgspec.DecodeError, prefix: str = ""
) -> FieldProblem:
    """Turn msgspec's message into a field path such as `events[3].occurred_at`."""
    return field_problem_from_message(str(error), prefix)


def field_problem_from_message(text: str, prefix: str = "") -> FieldProblem:
    match = _MSGSPEC_PATH.match(text)
    assert match is not None  # the pattern matches any text
    message, path = match["message"], (match["path"] or "")
    missing = _MISSING_FIELD.match(message)
    if missing:
        path = f"{path}.{missing[1]}"
    path = path.lstrip(".")
    if prefix and path:
        path = prefix + path if path.startswith("[") else f"{prefix}.{path}"
    return FieldProblem(field=path or prefix or "body", message=message)


def problem_response(
    request: Request[Any, Any, Any], problem: Problem, headers: Mapping[str, str] | None = None
) -> Response[Problem]:
    all_headers = dict(headers or {})
    request_id = request_id_of(request.scope)
    if request_id is None:
        # Routing errors (404, 405) are raised before the request-id middleware runs.
        request_id = all_headers["x-request-id"] = secrets.token_hex(8)
    problem.request_id = request_id
    return Response(problem, status_code=problem.status, media_type=MEDIA_TYPE, headers=all_headers)


def _api_error(request: Request[Any, Any, Any], exc: ApiError) -> Response[Problem]:
    return problem_response(request, exc.problem, exc.headers)


def _validation(request: Request[Any, Any, Any], exc: ValidationException) -> Response[Problem]:
    errors = [_field_problem(item) for item in exc.extra or [] if isinstance(item, dict)]
    detail = "; ".join(f"{e.field}: {e.message}" for e in errors) or exc.detail
    return problem_response(
        request,
        Problem(type=VALIDATION, title="Invalid request", status=400, detail=detail, errors=errors),
    )


def _field_problem(item: dict[str, Any]) -> FieldProblem:
    # Litestar moves msgspec's path into `key`, naming the whole body `data`.
    message = str(item.get("message", "invalid"))
    key = str(item.get("key") or "")
    if message == repr(key):
        message = "is required"  # Litestar's KeyError for a missing body (key `data`)
    if " - at `$" not in message and key and key != "data":
        message = f"{message} - at `$.{key}`"
    return field_problem_from_message(message)


def _http(request: Request[Any, Any, Any], exc: HTTPException) -> Response[Problem]:
    title = _TITLES.get(exc.status_code, "Error")
    detail = exc.detail if exc.detail and exc.detail != title else None
    problem = Problem(title=title, status=exc.status_code, detail=_detail(detail))
    if exc.status_code == 400:
        # A body that is not JSON at all: the whole body is the bad field.
        problem.type = VALIDATION
        problem.errors = [FieldProblem("body", detail or "malformed request body")]
    return problem_response(request, problem, exc.headers)


def _unstorable_text(request: Request[Any, Any, Any], exc: Exception) -> Response[Problem]:
    # Postgres text and jsonb cannot hold U+0000; such input is the caller's, not a fault here.
    return problem_response(
        request,
        Problem(
            type=VALIDATION,
            title="Invalid request",
            status=400,
            detail="a text value holds the character U+0000 (NUL), which cannot be stored",
            errors=[FieldProblem("body", "text values may not contain U+0000")],
        ),
    )


def _redis_down(request: Request[Any, Any, Any], exc: Exception) -> Response[Problem]:
    # Only reads of live data need Redis; events are still taken while it is away.
    log.warning("Redis unavailable for %s %s: %s", request.method, request.url.path, exc)
    return problem_response(
        request,
        Problem(
            title="Service Unavailable",
            status=503,
            detail="live leaderboards are unavailable for a moment; retry shortly",
        ),
        {"Retry-After": "1"},
    )


def _unexpected(request: Request[Any, Any, Any], exc: Exception) -> Response[Problem]:
    request_id = request_id_of(request.scope)
    log.exception(
        "unexpected error in %s %s (request %s)", request.method, request.url.path, request_id
    )
    return problem_response(
        request,
        Problem(
            title="Internal Server Error",
            status=HTTP_500_INTERNAL_SERVER_ERROR,
            detail=f"An unexpected error occurred; quote request id {request_id}.",
        ),
    )


_TITLES = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    409: "Conflict",
    413: "Content Too Large",
    415: "Unsupported Media Type",
    422: "Unprocessable Content",
    429: "Too Many Requests",
    500: "Internal Server Error",
    503: "Service Unavailable",
}

HANDLERS: ExceptionHandlersMap = {
    ApiError: _api_error,
    asyncpg.CharacterNotInRepertoireError: _unstorable_text,
    asyncpg.UntranslatableCharacterError: _unstorable_text,
    RedisError: _redis_down,
    ValidationException: _validation,
    HTTPException: _http,
    Exception: _unexpected,
}
