"""Real parts for the integration tests: an HTTP server on 127.0.0.1 that can fail, throttle or
hang on demand, SQLite files, and PostgreSQL when WFKIT_TEST_POSTGRES_URL names a server."""

from __future__ import annotations

import os
import uuid
from typing import Any

import pytest
from scripted_http import ScriptedServer

POSTGRES_URL = os.environ.get("WFKIT_TEST_POSTGRES_URL")
NO_POSTGRES = (
    "no PostgreSQL server configured: set WFKIT_TEST_POSTGRES_URL="
    "postgresql+psycopg://user:password@127.0.0.1:port/db (.ci/run starts one)"
)


@pytest.fixture
def http_server():
    server = ScriptedServer().start()
    try:
        yield server
    finally:
        server.stop()


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
