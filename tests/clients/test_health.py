"""The health probe against real loopback HTTP servers whose answers are not health answers."""
from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from clients import health

CHUNK = b'{"latest_version": "9.9.9", "padding": "' + b"x" * 4000
"""One chunk of the endless body: it starts like a health answer, then never ends."""


class _EndlessBody(BaseHTTPRequestHandler):
    """200 with a chunked body that never ends, paced and with a small send buffer, so that what it
    sent is about what the client read."""

    protocol_version = "HTTP/1.1"
    url: str
    sent: list[int]
    done: threading.Event

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 8192)
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        sent = 0
        try:
            while True:
                self.wfile.write(b"%x\r\n%s\r\n" % (len(CHUNK), CHUNK))
                self.wfile.flush()
                sent += len(CHUNK)
                time.sleep(0.002)
        except OSError:  # the probe hung up
            pass
        finally:
            self.sent.append(sent)
            self.done.set()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def endless() -> Iterator[type[_EndlessBody]]:
    """A loopback server answering every GET with an endless body; its handler class records what it sent."""
    handler = type("Handler", (_EndlessBody,), {"sent": [], "done": threading.Event()})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    handler.url = f"http://127.0.0.1:{server.server_address[1]}/health"
    yield handler
    server.shutdown()
    server.server_close()


def test_endless_body_is_cut_at_the_cap(endless):
    """An endless body is read only up to about MAX_BODY_BYTES, within the timeout, and reported as over the cap."""
    started = time.monotonic()
    report = health.probe([endless.url], timeout_s=3.0)
    assert time.monotonic() - started < 3.0
    (endpoint,) = report.endpoints
    assert endpoint.up and endpoint.status == 200
    assert endpoint.version is None
    assert endpoint.error == f"body over the {health.MAX_BODY_BYTES // 1024} KiB cap, not read"
    assert endless.done.wait(5), "the probe never hung up"
    # The client's receive buffer may hold more than it read; the timeout alone would let megabytes through.
    assert endless.sent[0] <= 4 * health.MAX_BODY_BYTES
