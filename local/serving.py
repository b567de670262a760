"""A werkzeug WSGI server on 127.0.0.1 in a background thread, stoppable (used for the site/API and the IMDS)."""

from __future__ import annotations

import threading
from typing import Any

from werkzeug.serving import BaseWSGIServer, make_server


class BackgroundServer:
    """Binds at construction (so `port=0` yields a real port before anything else starts), serves on `start()`."""

    def __init__(self, app: Any, host: str = "127.0.0.1", port: int = 0, name: str = "http") -> None:
        self.server: BaseWSGIServer = make_server(host, port, app, threaded=True)
        self.server.daemon_threads = True
        self.host = host
        self.port = int(self.server.server_port)
        self.name = name
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> None:
        self._thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.1},
                                        name=f"{self.name}-server", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._thread is not None:
            self.server.shutdown()
            self._thread.join(timeout=5)
            self._thread = None
        self.server.server_close()
