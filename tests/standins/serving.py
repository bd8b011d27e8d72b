"""Serving a stand-in on 127.0.0.1 from a background thread, for the length of a `with` block."""

from __future__ import annotations

import threading
from http.server import ThreadingHTTPServer
from typing import Self


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
