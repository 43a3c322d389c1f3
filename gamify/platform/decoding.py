"""JSON bodies decoded into msgspec Structs so that a 400 names every bad field, not the first.

msgspec stops at the first error of a decode. A body that decodes at once costs one msgspec call,
as it always did (this is the hot path of POST /v1/events, once per event); only a body that
fails is taken apart: into its fields as raw JSON, each known field converted with its own
annotated type (read from the Struct with `msgspec.structs.fields`, so that the Struct stays the
one description of the body), then the missing required fields and the unknown ones reported.

Text holding U+0000 is refused here too, with its path: Postgres can store it in neither text
nor jsonb, and JSON can only spell it `\\u0000`, so a body without that escape skips the search.
"""

from __future__ import annotations

import functools
from typing import Any, NamedTuple, TypeVar

import msgspec

from gamify.platform.problems import FieldProblem, field_problem_from_msgspec, invalid

S = TypeVar("S", bound=msgspec.Struct)

NUL_ESCAPE = b"\\u0000"
_OBJECT = msgspec.json.Decoder(dict[str, msgspec.Raw])


class _Field(NamedTuple):
    decoder: msgspec.json.Decoder[Any]
    required: bool


class _Plan(NamedTuple):
    """How to decode one Struct: whole, or field by field (keyed by the JSON name)."""

    whole: msgspec.json.Decoder[Any]
    fields: dict[str, _Field]
    forbid_unknown: bool


@functools.cache
def _plan(kind: type[msgspec.Struct]) -> _Plan:
    config = kind.__struct_config__
    if config.tag_field is not None or config.array_like:
        raise TypeError(f"{kind.__name__}: only plain (untagged, object-like) Structs")
    fields = {
        field.encode_name: _Field(msgspec.json.Decoder(field.type), field.required)
        for field in msgspec.structs.fields(kind)
    }
    return _Plan(msgspec.json.Decoder(kind), fields, config.forbid_unknown_fields)


def decode_all(body: bytes, kind: type[S], prefix: str = "") -> tuple[S | None, list[FieldProblem]]:
    """`body` as a `kind`, or None and every problem, each named by its path under `prefix`
    (`events[3].occurred_at`; without a prefix, a body that is no JSON object is `body`)."""
    return decode_part(body, kind, prefix, nul_escaped=NUL_ESCAPE in body)


def decoded(body: bytes, kind: type[S]) -> S:
    """`body` as a `kind`; raises a 400 ApiError naming every bad field."""
    value, problems = decode_all(body, kind)
    if value is None:
        raise invalid(problems)
    return value


def decode_part(
    part: bytes | msgspec.Raw, kind: type[S], prefix: str, *, nul_escaped: bool
) -> tuple[S | None, list[FieldProblem]]:
    """`decode_all` for a part of a body (one event of a batch): `nul_escaped` says whether the
    whole body spells U+0000 anywhere, so that a batch is searched once, not per part."""
    try:
        return _decode_part(part, kind, prefix, nul_escaped)
    except RecursionError:
        # msgspec, and the NUL search, recurse once per level of nesting.
        return None, [FieldProblem(prefix or "body", "nested too deeply")]


def _decode_part(
    part: bytes | msgspec.Raw, kind: type[S], prefix: str, nul_escaped: bool
) -> tuple[S | None, list[FieldProblem]]:
    plan = _plan(kind)
    try:
        value: S = plan.whole.decode(part)
    except msgspec.ValidationError as exc:
        # The slow path names every problem; msgspec's first is the fallback should they differ.
        problems = _every_problem(part, plan, prefix, nul_escaped)
        return None, problems or [field_problem_from_msgspec(exc, prefix)]
    except msgspec.DecodeError as exc:  # not JSON at all
        return None, [field_problem_from_msgspec(exc, prefix)]
    if nul_escaped:
        problems = nul_problems(msgspec.to_builtins(value), prefix)
        if problems:
            return None, problems
    return value, []


def _every_problem(
    part: bytes | msgspec.Raw, plan: _Plan, prefix: str, nul_escaped: bool
) -> list[FieldProblem]:
    try:
        raw = _OBJECT.decode(part)
    except msgspec.DecodeError as exc:
        # Not an object, or not JSON after all: msgspec may meet a bad field (`{"x": 1,`)
        # before the end of the input.
        return [field_problem_from_msgspec(exc, prefix)]
    problems: list[FieldProblem] = []
    for name, text in raw.items():
        field = plan.fields.get(name)
        if field is not None:
            problems += _field_problems(text, field, join(prefix, name), nul_escaped)
    problems += [
        FieldProblem(join(prefix, name), "is required")
        for name, field in plan.fields.items()
        if field.required and name not in raw
    ]
    if plan.forbid_unknown:
        problems += [
            FieldProblem(join(prefix, name), "unknown field")
            for name in raw
            if name not in plan.fields
        ]
    return problems


def _field_problems(
    text: msgspec.Raw, field: _Field, path: str, nul_escaped: bool
) -> list[FieldProblem]:
    try:
        value = field.decoder.decode(text)
    except msgspec.ValidationError as exc:
        return [field_problem_from_msgspec(exc, path)]
    if nul_escaped:
        return nul_problems(msgspec.to_builtins(value), path)
    return []


def nul_problems(value: Any, prefix: str = "") -> list[FieldProblem]:
    return [FieldProblem(join(prefix, path), "may not contain U+0000") for path in nul_paths(value)]


def nul_paths(value: Any, path: str = "") -> list[str]:
    """Where U+0000 hides in a JSON value (a key or a string): `attributes.seat[0]`."""
    if isinstance(value, str):
        return [path] if "\x00" in value else []
    if isinstance(value, dict):
        found = []
        for key, item in value.items():
            inner = join(path, key)
            found += ([inner] if "\x00" in key else []) + nul_paths(item, inner)
        return found
    if isinstance(value, list):
        return [p for i, item in enumerate(value) for p in nul_paths(item, f"{path}[{i}]")]
    return []


def join(prefix: str, path: str) -> str:
    """A field path under `prefix`: `events[3]` + `player`, `scopes` + `[1]`."""
    if not prefix or not path:
        return prefix or path
    return prefix + path if path.startswith("[") else f"{prefix}.{path}"
