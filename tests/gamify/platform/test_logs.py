"""Logging through structlog: JSON lines with the request id, one access line per request."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any, cast

import pytest
import structlog
from litestar import Litestar, get
from litestar.testing import AsyncTestClient
from litestar.types import HTTPRequestEvent, Message, Scope

from gamify.platform import logs
from tests.gamify.support import assert_problem


def _ours(root: logging.Logger) -> list[logging.Handler]:
    return [h for h in root.handlers if h.name == logs.HANDLER_NAME]


@pytest.fixture
def restored_logging() -> Iterator[None]:
    """Puts back the root level, gamify's handler and structlog's config as the test found them."""
    root = logging.getLogger()
    handlers, level, config = _ours(root), root.level, structlog.get_config()
    yield
    # Only our handler: pytest attaches and detaches its own capture handlers per test phase.
    for handler in _ours(root):
        root.removeHandler(handler)
    for handler in handlers:
        root.addHandler(handler)
    root.setLevel(level)
    structlog.configure(**config)


@pytest.fixture
def output(app: Litestar, restored_logging: None) -> io.StringIO:
    """What gets logged from here on, as gamify writes it to a stderr that is no terminal."""
    buffer = io.StringIO()
    logs.configure("INFO", buffer)
    return buffer


def _lines(output: io.StringIO) -> list[dict[str, Any]]:
    # json.loads on every line: each line must be one whole JSON object.
    return [json.loads(line) for line in output.getvalue().splitlines() if line]


def _of(output: io.StringIO, logger: str) -> list[dict[str, Any]]:
    return [line for line in _lines(output) if line["logger"] == logger]


async def test_a_request_makes_one_json_access_line(
    client: AsyncTestClient[Litestar], output: io.StringIO
) -> None:
    response = await client.get("/health")
    assert response.status_code == 200
    [line] = _of(output, "gamify.access")
    assert line["level"] == "info"
    assert (line["method"], line["path"], line["status"]) == ("GET", "/health", 200)
    assert line["request_id"] == response.headers["x-request-id"]
    assert isinstance(line["duration_ms"], int | float) and line["duration_ms"] >= 0
    assert datetime.fromisoformat(line["timestamp"]).utcoffset() == timedelta(0)


async def test_lines_logged_while_handling_a_request_carry_its_id(
    app: Litestar, output: io.StringIO
) -> None:
    @get("/chatty")
    async def chatty() -> None:
        logging.getLogger("tests.chatty").info("inside %s", "the handler")
        structlog.stdlib.get_logger("tests.chatty").info("structured", answer=42)

    app.register(chatty)
    async with AsyncTestClient(app) as client:
        response = await client.get("/chatty")
    assert response.status_code == 200
    stdlib, native = _of(output, "tests.chatty")
    request_id = response.headers["x-request-id"]
    assert (stdlib["event"], stdlib["request_id"]) == ("inside the handler", request_id)
    assert (native["event"], native["answer"], native["request_id"]) == (
        "structured",
        42,
        request_id,
    )


async def test_a_line_outside_any_request_has_no_request_id(
    app: Litestar, output: io.StringIO
) -> None:
    # A request first, served in this test's own context (the test client would run it in a
    # task of its own, hiding an id left bound): its id must be gone once it is answered.
    sent = await _call(app, "/health", request_id=b"direct-1")
    assert sent[0]["type"] == "http.response.start" and sent[0]["status"] == 200
    logging.getLogger("tests.outside").warning("between requests")
    [line] = _of(output, "tests.outside")
    assert line["event"] == "between requests"
    assert "request_id" not in line
    [access] = _of(output, "gamify.access")
    assert access["request_id"] == "direct-1"


async def _call(app: Litestar, path: str, request_id: bytes) -> list[Message]:
    """The messages `app` sends for a GET of `path`, called as a server would call it."""
    # Only what an ASGI server puts in a scope; Litestar adds its own keys.
    scope = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": [(b"x-request-id", request_id)],
        "server": ("testserver", 80),
        "client": ("testclient", 50000),
    }
    sent: list[Message] = []

    async def receive() -> HTTPRequestEvent:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        sent.append(message)

    await app(cast("Scope", scope), receive, send)
    return sent


async def test_an_unexpected_error_is_one_json_line_with_the_id_and_the_exception(
    app: Litestar, output: io.StringIO
) -> None:
    @get("/boom")
    async def boom() -> None:
        raise RuntimeError("secret internals")

    app.register(boom)
    async with AsyncTestClient(app) as client:
        response = await client.get("/boom", headers={"x-request-id": "trace-42"})
    assert_problem(response, 500)
    assert "secret internals" not in response.text
    [error] = [line for line in _lines(output) if line["level"] == "error"]
    assert error["request_id"] == "trace-42"
    assert "Traceback" in error["exception"]
    assert "RuntimeError: secret internals" in error["exception"]
    [access] = _of(output, "gamify.access")
    assert (access["status"], access["request_id"]) == (500, "trace-42")


async def test_no_access_line_when_info_is_off(
    client: AsyncTestClient[Litestar], output: io.StringIO
) -> None:
    logs.configure("WARNING", output)
    response = await client.get("/health", headers={"x-request-id": "quiet-1"})
    assert response.headers["x-request-id"] == "quiet-1"
    assert _of(output, "gamify.access") == []


def test_configuring_again_writes_each_line_once(restored_logging: None) -> None:
    buffer = io.StringIO()
    logs.configure("INFO", buffer)
    logs.configure("INFO", buffer)
    logging.getLogger("tests.twice").info("once")
    assert len(_ours(logging.getLogger())) == 1
    assert [line["event"] for line in _of(buffer, "tests.twice")] == ["once"]


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_terminal_gets_readable_lines(restored_logging: None) -> None:
    terminal = _Terminal()
    logs.configure("INFO", terminal)
    logging.getLogger("tests.terminal").info("hello there")
    text = terminal.getvalue()
    assert "hello there" in text and "tests.terminal" in text
    assert not text.lstrip().startswith("{")
