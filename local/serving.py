"""Background threads of local mode: a werkzeug WSGI server (the site/API and the IMDS) and a stoppable loop
(the stream poller, the VM host's watcher, the sweeper's schedule)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server
from werkzeug.wrappers import Response


class RefusalRenderingHandler(WSGIRequestHandler):
    """werkzeug's request handler, except that what http.server refuses before the app runs (a request line over
    64 KiB: 414; a header line over 64 KiB or over 100 headers: 431; a malformed request: 400) is rendered by the
    app's `server_refusal(status) -> Response` when it has one, instead of http.server's HTML page."""

    def make_environ(self) -> dict[str, Any]:
        """werkzeug's environ, with `RAW_URI`/`REQUEST_URI` the request target as sent: http.server turns a leading
        `//` into `/` before werkzeug sees it, and API Gateway answers 404 to `//api/jobs` (`local.web`)."""
        environ = super().make_environ()
        parts = self.raw_requestline.decode("latin-1").split()
        if len(parts) >= 2:  # method, target[, version]
            environ["RAW_URI"] = environ["REQUEST_URI"] = parts[1]
        return environ

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        render = getattr(self.server.app, "server_refusal", None)
        if render is None:
            super().send_error(code, message, explain)
            return
        response: Response = render(code)
        body = response.get_data()
        self.log_error("code %d, message %s", code, message)
        if self.request_version == "HTTP/0.9":  # unparsed request line: http.server would send the body alone
            self.request_version = "HTTP/1.0"
        self.send_response(response.status_code)
        for name, value in response.headers.items():
            if name.lower() != "content-length":
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Connection", "close")  # also sets close_connection: what follows is not a request
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)


class BackgroundServer:
    """Binds at construction (so `port=0` yields a real port before anything else starts), serves on `start()`."""

    def __init__(self, app: Any, host: str = "127.0.0.1", port: int = 0, name: str = "http") -> None:
        self.server: BaseWSGIServer = make_server(host, port, app, threaded=True,
                                                  request_handler=RefusalRenderingHandler)
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


class BackgroundLoop:
    """Runs `body` in a daemon thread; `body` loops until `stopping` is set, which `stop()` does before joining."""

    def __init__(self, body: Callable[[], None], name: str, join_seconds: float = 10) -> None:
        self.stopping = threading.Event()
        self._thread = threading.Thread(target=body, name=name, daemon=True)
        self._join_seconds = join_seconds

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self.stopping.set()
        if self._thread.is_alive():
            self._thread.join(timeout=self._join_seconds)
