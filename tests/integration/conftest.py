"""Real parts for the integration tests: an HTTP server on 127.0.0.1 that can fail, throttle or
hang on demand, SQLite files, and PostgreSQL when WFKIT_TEST_POSTGRES_URL names a server."""

from __future__ import annotations

import json
import os
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

import pytest

from wfkit.integration.orchestrator import IntegrationOrchestrator

POSTGRES_URL = os.environ.get("WFKIT_TEST_POSTGRES_URL")
NO_POSTGRES = (
    "no PostgreSQL server configured: set WFKIT_TEST_POSTGRES_URL="
    "postgresql+psycopg://user:password@127.0.0.1:port/db (.ci/run starts one)"
)


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


@pytest.fixture
def http_server():
    server = ScriptedServer().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
async def orch(tmp_path):
    orchestrator = IntegrationOrchestrator(dead_letter_store=tmp_path / "dead-letters.sqlite")
    try:
        yield orchestrator
    finally:
        await orchestrator.aclose()


@pytest.fixture
def name():
    """A unique SQL-safe name, so tests sharing one PostgreSQL database never collide."""
    return "t_" + uuid.uuid4().hex[:12]


@pytest.fixture(
    params=["sqlite", pytest.param("postgres", marks=pytest.mark.skipif(not POSTGRES_URL, reason=NO_POSTGRES))]
)
def db_url(request, tmp_path):
    """A database URL: a fresh SQLite file, or the configured PostgreSQL server."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'data.sqlite'}"
    return POSTGRES_URL


@pytest.fixture
def drop_tables(db_url):
    """Register table names to drop after the test (PostgreSQL keeps them otherwise)."""
    import sqlalchemy as sa

    tables: list[str] = []
    yield tables
    if db_url.startswith("sqlite"):
        return
    engine = sa.create_engine(db_url)
    try:
        with engine.begin() as conn:
            for table in tables:
                conn.execute(sa.text(f'DROP TABLE IF EXISTS "{table}"'))
    finally:
        engine.dispose()


@pytest.fixture
def query():
    """``query(url, sql, **params)``: all rows, read over a separate connection (what another
    program would see)."""
    import sqlalchemy as sa

    def run(url: str, sql: str, **params: Any) -> list[tuple[Any, ...]]:
        engine = sa.create_engine(url)
        try:
            with engine.connect() as conn:
                return [tuple(r) for r in conn.execute(sa.text(sql), params)]
        finally:
            engine.dispose()

    return run
