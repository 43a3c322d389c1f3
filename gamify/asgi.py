"""The ASGI entry point server workers load: `gamify.asgi:app` (a factory)."""

from __future__ import annotations

import gc

from litestar import Litestar

from gamify.app import create_app
from gamify.platform.settings import ensure_secret, from_env


def app() -> Litestar:
    # Workers run with both URLs in their environment: `gamify serve` resolves embedded
    # servers once in the parent, so a worker never starts servers of its own.
    built = create_app(ensure_secret(from_env()))
    # The imported code and compiled app live as long as the worker: keep them out of every
    # collection, and collect the young generation less often (requests make many short-lived
    # objects; profiles showed full collections walking long-lived state as a top cost).
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 20, 50)
    return built
