"""A stand-in for the Nexy server's two health endpoints: `/health` (8080) and `/updates/health` (8081).

Local use and tests only. Each endpoint answers the JSON the real server does
(`status`, `latest_version`, `latest_build`); `version`, `build` and `up` can be changed live.
"""
from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class HealthServer:
    """Two loopback HTTP servers answering like the Nexy server's health endpoints."""

    def __init__(self, version: str = "2.4.0", build: str = "240"):
        self.version = version
        self.build = build
        self.up = True
        self._servers: list[tuple[ThreadingHTTPServer, str]] = []

    @property
    def urls(self) -> list[str]:
        return [f"http://127.0.0.1:{server.server_address[1]}{path}" for server, path in self._servers]

    def start(self) -> "HealthServer":
        for path in ("/health", "/updates/health"):
            server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler(path))
            server.daemon_threads = True
            threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True).start()
            self._servers.append((server, path))
        return self

    def stop(self) -> None:
        for server, _ in self._servers:
            server.shutdown()
            server.server_close()
        self._servers.clear()

    def __enter__(self) -> "HealthServer":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _handler(self, path: str) -> type[BaseHTTPRequestHandler]:
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                if self.path.split("?")[0] != path:
                    return self._send(404, {"detail": "Not Found"})
                if not owner.up:
                    return self._send(503, {"status": "unavailable"})
                self._send(200, {"status": "ok", "latest_version": owner.version, "latest_build": owner.build})

            def _send(self, status: int, body: dict) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: object) -> None:
                pass

        return Handler
