"""What the HTTP stand-ins share: their handler and server bases, and serving on 127.0.0.1 from a background thread
for the length of a `with` block."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self


class ServedInThread:
    """Runs `server` (bound to 127.0.0.1) in a daemon thread between __enter__ and __exit__.

    `stop`, when given, is set first on exit, so handlers hanging on purpose (a fault) let go.
    """

    def __init__(self, server: ThreadingHTTPServer, name: str, stop: threading.Event | None = None) -> None:
        self._server = server
        self._stop = stop
        self._thread = threading.Thread(target=server.serve_forever, args=(0.05,), name=name, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._stop is not None:
            self._stop.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


class StandinHandler(BaseHTTPRequestHandler):
    """What every stand-in's request handler shares: keep-alive, no request log, a body read and a body sent."""

    protocol_version = "HTTP/1.1"  # keep-alive for clients that reuse connections
    disable_nagle_algorithm = True  # headers and body go out in two writes: no 40 ms wait on a delayed ACK

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def read_body(self) -> bytes:
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def send_body(
        self, status: int, data: bytes, content_type: str | None, headers: dict[str, str] | None = None
    ) -> None:
        """Status, `headers`, the content type (when given) and length, then `data`."""
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        if content_type is not None:
            self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


class StandinServer(ThreadingHTTPServer):
    """A threaded server on 127.0.0.1 (`port` 0: any free port) whose handlers reach the stand-in's `state`."""

    daemon_threads = True
    request_queue_size = 64

    def __init__(self, port: int, handler: type[BaseHTTPRequestHandler], state: Any) -> None:
        super().__init__(("127.0.0.1", port), handler)
        self.state = state
