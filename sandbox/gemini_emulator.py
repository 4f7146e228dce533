"""A stand-in for the Gemini API's `generateContent`, for the key smoke test (runbook 6.3).

Local use and tests only. `POST /v1beta/models/{model}:generateContent` with the key in the
`x-goog-api-key` header (or `?key=`), as Google's API takes it. The key is judged by the same
rules as the simulated VM's service (its `var/lib/sandbox/gemini.json`): the shape of a Google
API key (`AIza` + 35 characters), not expired, not revoked. Errors are Google's: HTTP 400
`INVALID_ARGUMENT` with the `API_KEY_INVALID` reason; 404 for another path; 405 for another verb.
"""
from __future__ import annotations

import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

_PATH = re.compile(r"^/v1beta/models/(?P<model>[A-Za-z0-9.\-]+):generateContent$")
_KEY = re.compile(r"AIza[0-9A-Za-z_\-]{35}")


class GeminiEmulator:
    """One loopback HTTP server judging keys against a simulated VM's gemini.json."""

    def __init__(self, state_file: Path | None = None):
        self.state_file = state_file
        self.calls = 0
        self._server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        """The generateContent URL of the VM's model (what NEXY_GEMINI_URL is set to)."""
        assert self._server is not None, "start() first"
        return f"http://127.0.0.1:{self._server.server_address[1]}/v1beta/models/gemini-2.5-flash:generateContent"

    def _state(self) -> dict:
        try:
            return json.loads(self.state_file.read_text()) if self.state_file else {}
        except (FileNotFoundError, ValueError):
            return {}

    def judge(self, key: str) -> tuple[int, dict]:
        state = self._state()
        if key in set(state.get("expired_keys", [])):
            message = "API key expired. Please renew the API key."
        elif not _KEY.fullmatch(key) or key in set(state.get("revoked_keys", [])):
            message = "API key not valid. Please pass a valid API key."
        else:
            return 200, {"candidates": [{"content": {"parts": [{"text": "pong"}], "role": "model"},
                                         "finishReason": "MAX_TOKENS"}],
                         "modelVersion": state.get("model", "gemini-2.5-flash")}
        return 400, {"error": {"code": 400, "message": message, "status": "INVALID_ARGUMENT",
                               "details": [{"@type": "type.googleapis.com/google.rpc.ErrorInfo",
                                            "reason": "API_KEY_INVALID", "domain": "googleapis.com"}]}}

    def start(self) -> GeminiEmulator:
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> GeminiEmulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                parts = urlsplit(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                if not _PATH.match(parts.path):
                    return self._send(404, {"error": {"code": 404, "message": "Not Found", "status": "NOT_FOUND"}})
                owner.calls += 1
                try:
                    json.loads(body or b"{}")
                except ValueError:
                    return self._send(400, {"error": {"code": 400, "message": "Invalid JSON payload received.",
                                                      "status": "INVALID_ARGUMENT"}})
                key = self.headers.get("x-goog-api-key") or (parse_qs(parts.query).get("key") or [""])[0]
                self._send(*owner.judge(key))

            def do_GET(self) -> None:  # noqa: N802
                self._send(405, {"error": {"code": 405, "message": "Method Not Allowed", "status": "UNIMPLEMENTED"}})

            def _send(self, status: int, body: dict) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json; charset=UTF-8")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: object) -> None:
                pass

        return Handler
