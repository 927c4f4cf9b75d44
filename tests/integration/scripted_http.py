"""An HTTP server on 127.0.0.1 that answers as a test scripts it: it can fail, throttle or hang
on demand, and it records every request."""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit


@dataclass
class Reply:
    """What the server answers: a status, a JSON (or text) body, headers; or it hangs."""

    status: int = 200
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    hang: bool = False
    echo_headers: bool = False


@dataclass
class Recorded:
    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: bytes
    at: float

    def json(self) -> Any:
        return json.loads(self.body) if self.body else None


class ScriptedServer:
    """``on(path, *replies, then=...)`` scripts the answers for a path, in order."""

    def __init__(self) -> None:
        self.requests: list[Recorded] = []
        self._scripts: dict[str, deque[Reply]] = {}
        self._defaults: dict[str, Reply] = {}
        self._lock = threading.Lock()
        self.release = threading.Event()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                parts = urlsplit(self.path)
                record = Recorded(
                    self.command, parts.path, parts.query, dict(self.headers.items()), body,
                    time.time(),
                )
                reply = server._next(record)
                if reply.hang:
                    server.release.wait(30)
                    self.close_connection = True
                    return
                payload = reply.body
                if reply.echo_headers:
                    payload = {"headers": dict(self.headers.items())}
                if payload is None:
                    payload = {"ok": True, "path": parts.path, "received": record.json()}
                data = payload.encode() if isinstance(payload, str) else json.dumps(payload).encode()
                self.send_response(reply.status)
                content_type = "text/plain" if isinstance(payload, str) else "application/json"
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(data)))
                for name, value in reply.headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _handle

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )

    def _next(self, record: Recorded) -> Reply:
        with self._lock:
            self.requests.append(record)
            script = self._scripts.get(record.path)
            if script:
                return script.popleft()
            return self._defaults.get(record.path, Reply())

    def on(self, path: str, *replies: Reply, then: Reply | None = None) -> str:
        with self._lock:
            self._scripts[path] = deque(replies)
            if then is not None:
                self._defaults[path] = then
        return self.url(path)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def to(self, path: str) -> list[Recorded]:
        with self._lock:
            return [r for r in self.requests if r.path == path]

    def start(self) -> ScriptedServer:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.release.set()
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(5)
