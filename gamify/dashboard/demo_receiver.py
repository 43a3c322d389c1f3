"""The demo's loyalty system: takes the credits gamify delivers and checks their signatures.

It does what a partner's endpoint must (API.md, "Prize pools and loyalty delivery"): verify the
Standard Webhooks headers with the `standardwebhooks` package, answer 200 to a good credit and
400 to a bad signature, and count a `webhook-id` once however often it is retried. The standard
library's threaded HTTP server is plenty for a credit every few seconds, and it runs in a
daemon thread of the flight simulator's process.
"""

from __future__ import annotations

import base64
import secrets
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import msgspec
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

PATH = "/credits"


class Credit(msgspec.Struct, frozen=True):
    """The body of a delivery, as gamify sends it."""

    id: str
    type: str
    campaign: str
    player: str
    amount: int
    unit: str
    reason: str | None = None


class Tally(msgspec.Struct):
    credits: int = 0
    amount: int = 0
    refused: int = 0


class Receiver:
    """Counts verified credits; `url` and `secret` go into the campaign's `loyalty`."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        self.secret = "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()
        self._webhook = Webhook(self.secret)
        self._lock = threading.Lock()
        self._tally = Tally()
        self._seen: set[str] = set()
        self._server = ThreadingHTTPServer((host, 0), _handler(self))
        self._server.daemon_threads = True
        self.url = f"http://{host}:{self._server.server_address[1]}{PATH}"

    def tally(self) -> Tally:
        with self._lock:
            return msgspec.structs.replace(self._tally)

    def take(self, body: bytes, headers: dict[str, str]) -> int:
        """The status to answer a delivery with."""
        try:
            credit = msgspec.convert(self._webhook.verify(body, headers), Credit)
        except (WebhookVerificationError, msgspec.ValidationError, ValueError):
            with self._lock:
                self._tally.refused += 1
            return 400
        with self._lock:
            if credit.id not in self._seen:  # a retry of a credit already taken
                self._seen.add(credit.id)
                self._tally.credits += 1
                self._tally.amount += credit.amount
        return 200

    @contextmanager
    def running(self) -> Iterator[Receiver]:
        thread = threading.Thread(
            target=self._server.serve_forever, name="demo-receiver", daemon=True
        )
        thread.start()
        try:
            yield self
        finally:
            self._server.shutdown()
            self._server.server_close()
            thread.join()


def _handler(receiver: Receiver) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive: the dispatcher reuses its connections

        def do_POST(self) -> None:
            length = int(self.headers.get("content-length") or 0)
            body = self.rfile.read(length)
            status = receiver.take(body, dict(self.headers.items())) if self.path == PATH else 404
            self.send_response(status)
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass  # the progress line says what arrived; a line per request would bury it

    return Handler
