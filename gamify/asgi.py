"""The ASGI entry point server workers load: `gamify.asgi:app` (a factory)."""

from __future__ import annotations

from litestar import Litestar

from gamify.app import create_app
from gamify.settings import ensure_secret, from_env


def app() -> Litestar:
    # Workers run with both URLs in their environment: `gamify serve` resolves embedded
    # servers once in the parent, so a worker never starts servers of its own.
    return create_app(ensure_secret(from_env()))
