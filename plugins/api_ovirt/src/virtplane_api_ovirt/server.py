"""Run the API alone under uvicorn (the engine serves the same app itself).

:class:`Server` runs in a thread of the calling process (tests, benchmarks,
embedders) or in the foreground (``virtplane-api serve``). uvicorn serves many
connections at once on its event loop and the handlers run in a thread pool,
so a client's idle keep-alive connection never blocks another's request.
"""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path
from typing import Any

import uvicorn

from virtplane_api_ovirt import pki as _pki


def _http_impl() -> str:
    """httptools when installed (about twice h11's speed here), else h11."""
    try:
        import httptools  # noqa: F401
    except ImportError:
        return "h11"
    return "httptools"


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as s:
        s.bind((host, 0))
        port: int = s.getsockname()[1]
        return port


class Server:
    """uvicorn around an ASGI app; HTTPS when ``pki`` names the CA folder."""

    def __init__(self, app: Any, host: str = "127.0.0.1", port: int = 0,
                 pki: Path | None = None, tls_names: list[str] | None = None,
                 log_level: str = "warning") -> None:
        self.host = host
        self.port = port or free_port(host)
        ssl: dict[str, Any] = {}
        if pki is not None:
            cert, key = _pki.ensure_server_cert(pki, [host, *(tls_names or [])])
            ssl = {"ssl_certfile": str(cert), "ssl_keyfile": str(key)}
        self.scheme = "https" if ssl else "http"
        config = uvicorn.Config(app, host=host, port=self.port, log_level=log_level,
                                http=_http_impl(), lifespan="on", access_log=False,
                                timeout_keep_alive=75, **ssl)
        self._server = uvicorn.Server(config)
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """The API's URL, as the SDK's ``Connection(url=...)`` wants it."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}:{self.port}/ovirt-engine/api"

    def run(self) -> None:
        """Serve in the foreground until interrupted."""
        self._server.run()

    def start(self, timeout: float = 10.0) -> Server:
        """Serve in a background thread; returns once it accepts connections."""
        self._thread = threading.Thread(target=self._server.run, name="api-ovirt", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"the API server did not start on {self.host}:{self.port}")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(10)

    def __enter__(self) -> Server:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
