"""``database`` endpoints on real SQLite files and, when configured, a real PostgreSQL server."""

from __future__ import annotations

import asyncio
import socket

import pytest
import sqlalchemy as sa

from wfkit import IntegrationConfigError, IntegrationEndpoint, IntegrationFlow


def database(endpoint_id, url, **config):
    return IntegrationEndpoint(endpoint_id, endpoint_id, "database", {"url": url, **config}, ["sql"])


def flow(sources=(), targets=(), flow_id="f", **handling):
    return IntegrationFlow(flow_id, flow_id, list(sources), list(targets), [], {}, handling)


def make_customers(url, table):
    engine = sa.create_engine(url)
    meta = sa.MetaData()
    customers = sa.Table(
        table, meta,
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("name", sa.Text),
        sa.Column("region", sa.Text),
    )
    meta.create_all(engine)
    with engine.begin() as conn:
        conn.execute(customers.insert(), [
            {"id": 1, "name": "Ada", "region": "eu"},
            {"id": 2, "name": "Grace", "region": "us"},
            {"id": 3, "name": "Edsger", "region": "eu"},
        ])
    engine.dispose()


async def test_target_inserts_rows_and_creates_the_table(orch, db_url, name, drop_tables, query):
    drop_tables.append(name)
    orch.register_endpoint(database("out", db_url, table=name, create_table=True))
    orch.create_flow(flow(targets=["out"]))
    messages = [
        {"order_id": 1, "amount": 10.5, "customer": "Ada", "paid": True, "meta": {"tags": ["a"]}},
        {"order_id": 2, "amount": 99.0, "customer": "Grace", "paid": False, "meta": {"tags": []}},
    ]
    for i, message in enumerate(messages):
        result = await orch.execute_flow("f", message, message_id=f"m{i}")
        assert result["status"] == "completed", result["error"]
        assert result["trace"][0]["inserted"] == 1

    rows = query(db_url, f'SELECT order_id, amount, customer, paid, _wfkit_message_id FROM "{name}" ORDER BY order_id')
    assert rows == [(1, 10.5, "Ada", True, "f:m0"), (2, 99.0, "Grace", False, "f:m1")]
    (meta,) = query(db_url, f'SELECT meta FROM "{name}" WHERE order_id = 2')[0]
    assert meta == {"tags": []} or meta == '{"tags": []}'  # JSON column (PostgreSQL decodes it)


async def test_redelivered_message_does_not_duplicate_rows(orch, db_url, name, drop_tables, query):
    drop_tables.append(name)
    orch.register_endpoint(database("out", db_url, table=name, create_table=True))
    orch.create_flow(flow(targets=["out"]))
    first = await orch.execute_flow("f", {"n": 1}, message_id="same")
    again = await orch.execute_flow("f", {"n": 1}, message_id="same")
    other = await orch.execute_flow("f", {"n": 1}, message_id="other")
    assert [r["trace"][0]["inserted"] for r in (first, again, other)] == [1, 0, 1]
    assert all(r["status"] == "completed" for r in (first, again, other))
    assert query(db_url, f'SELECT count(*) FROM "{name}"') == [(2,)]


async def test_declared_column_types(orch, db_url, name, drop_tables, query):
    drop_tables.append(name)
    orch.register_endpoint(database("out", db_url, table=name, create_table=True, columns={"amount": "float", "note": "text"}))
    orch.create_flow(flow(targets=["out"]))
    for amount in (10, 10.25):  # an int first would otherwise make the column an integer
        assert (await orch.execute_flow("f", {"amount": amount}))["status"] == "completed"
    assert query(db_url, f'SELECT amount, note FROM "{name}" ORDER BY amount') == [(10.0, None), (10.25, None)]


async def test_query_source_binds_parameters(orch, db_url, name, drop_tables):
    drop_tables.append(name)
    make_customers(db_url, name)
    got = []
    orch.register_endpoint(database(
        "customer", db_url, query=f'SELECT name, region FROM "{name}" WHERE id = :cid',
        params={"cid": "order.customer_id"},
    ))
    orch.register_endpoint(database(
        "peers", db_url, query=f'SELECT id, name FROM "{name}" WHERE region = :region ORDER BY id',
        into="peers", many=True,
    ))
    orch.register_endpoint(IntegrationEndpoint("sink", "S", "function", {"callable": got.append}, []))
    orch.create_flow(flow(["customer", "peers"], ["sink"]))

    result = await orch.execute_flow("f", {"order": {"customer_id": 3}})

    assert result["status"] == "completed", result["error"]
    assert got == [{
        "order": {"customer_id": 3}, "name": "Edsger", "region": "eu",
        "peers": [{"id": 1, "name": "Ada"}, {"id": 3, "name": "Edsger"}],
    }]
    assert [s["rows"] for s in result["trace"][:2]] == [1, 2]


async def test_values_are_bound_never_formatted(orch, db_url, name, drop_tables, query):
    drop_tables.append(name)
    make_customers(db_url, name)
    orch.register_endpoint(database(
        "lookup", db_url, query=f'SELECT name FROM "{name}" WHERE name = :who', into="found",
    ))
    orch.register_endpoint(IntegrationEndpoint("sink", "S", "function", {"callable": lambda d: None}, []))
    orch.create_flow(flow(["lookup"], ["sink"]))
    for attack in ("x' OR '1'='1", f"x'; DROP TABLE \"{name}\"; --"):
        result = await orch.execute_flow("f", {"who": attack})
        assert result["status"] == "completed"
        assert result["processed_data"]["found"] is None  # no row has that literal name
    assert query(db_url, f'SELECT count(*) FROM "{name}"') == [(3,)]


async def test_missing_query_parameter(orch, db_url, name, drop_tables):
    drop_tables.append(name)
    make_customers(db_url, name)
    orch.register_endpoint(database("c", db_url, query=f'SELECT name FROM "{name}" WHERE id = :customer_id'))
    orch.register_endpoint(IntegrationEndpoint("sink", "S", "function", {"callable": lambda d: None}, []))
    orch.create_flow(flow(["c"], ["sink"]))
    result = await orch.execute_flow("f", {"id": 1})
    assert "the query needs :customer_id from the field 'customer_id', which the message does not have" in result["error"]


async def test_target_statement(orch, db_url, name, drop_tables, query):
    drop_tables.append(name)
    make_customers(db_url, name)
    orch.register_endpoint(database("rename", db_url, query=f'UPDATE "{name}" SET name = :name WHERE id = :id'))
    orch.create_flow(flow(targets=["rename"]))
    result = await orch.execute_flow("f", {"id": 2, "name": "Hopper"})
    assert result["trace"][0]["rowcount"] == 1
    assert query(db_url, f'SELECT name FROM "{name}" WHERE id = 2') == [("Hopper",)]


async def test_permanent_database_errors_are_not_retried(orch, db_url, name, drop_tables):
    drop_tables.append(name)
    orch.register_endpoint(database("nope", db_url, table=name))  # no create_table
    orch.create_flow(flow(targets=["nope"], retry={"max_attempts": 4, "backoff": 0}))
    result = await orch.execute_flow("f", {"a": 1})
    assert result["trace"][0]["attempts"] == 1
    assert f"table {name!r} does not exist" in result["error"] and "create_table: true" in result["error"]


async def test_unknown_and_invalid_columns(orch, db_url, name, drop_tables):
    drop_tables.append(name)
    orch.register_endpoint(database("out", db_url, table=name, create_table=True))
    orch.create_flow(flow(targets=["out"]))
    assert (await orch.execute_flow("f", {"a": 1}))["status"] == "completed"
    extra = await orch.execute_flow("f", {"a": 2, "b": 3})
    assert f"table {name!r} has no column(s) 'b'" in extra["error"]
    bad = await orch.execute_flow("f", {"a": 2, "x; drop table y": 3})
    assert "column 'x; drop table y' is not a valid SQL identifier" in bad["error"]


async def test_existing_table_without_idempotency_column(orch, db_url, name, drop_tables, query):
    drop_tables.append(name)
    make_customers(db_url, name)
    orch.register_endpoint(database("plain", db_url, table=name))
    orch.register_endpoint(database("strict", db_url, table=name, idempotency_column="msg_key"))
    orch.create_flow(flow(targets=["plain"]))
    orch.create_flow(flow(targets=["strict"], flow_id="g"))
    assert (await orch.execute_flow("f", {"id": 10, "name": "Barbara"}))["status"] == "completed"
    assert query(db_url, f'SELECT name FROM "{name}" WHERE id = 10') == [("Barbara",)]
    strict = await orch.execute_flow("g", {"id": 11, "name": "Frances"})
    assert f"table {name!r} has no idempotency column 'msg_key'" in strict["error"]


async def test_unreachable_server_is_transient_and_password_masked(orch):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"postgresql+psycopg://app:pa55-w0rd-x@127.0.0.1:{port}/db?connect_timeout=2"
    orch.register_endpoint(database("pg", url, table="orders"))
    orch.create_flow(flow(targets=["pg"], retry={"max_attempts": 2, "backoff": 0}))
    result = await orch.execute_flow("f", {"a": 1})
    assert result["status"] == "failed"
    assert result["trace"][0]["attempts"] == 2  # connection refused: worth retrying
    assert "OperationalError" in result["error"]
    assert "pa55-w0rd-x" not in repr(result) and "pa55-w0rd-x" not in repr(orch.endpoints)


def test_missing_driver_is_a_config_error(orch):
    with pytest.raises(IntegrationConfigError, match=r"needs a database driver that is not installed"):
        orch.register_endpoint(database("x", "mysql+pymysql://u@127.0.0.1/db", table="t"))
    with pytest.raises(IntegrationConfigError, match=r"cannot be used: Can.t load plugin: sqlalchemy.dialects:nosuchdb"):
        orch.register_endpoint(database("y", "nosuchdb://u@h/db", table="t"))


async def test_concurrent_inserts_share_commits_and_stay_exact(orch, db_url, name, drop_tables, query):
    drop_tables.append(name)
    orch.register_endpoint(database("out", db_url, table=name, create_table=True))
    orch.create_flow(flow(targets=["out"]))
    await orch.execute_flow("f", {"n": -1}, message_id="warm")  # creates the table
    db = orch.database(orch._endpoints["out"].url)
    before = db.commits
    first = await asyncio.gather(*(orch.execute_flow("f", {"n": i}, message_id=f"m{i}") for i in range(40)))
    assert db.commits - before < 40  # concurrent messages shared transactions
    # a batch mixing new messages and redelivered ones: each answer is still exact
    mixed = await asyncio.gather(*(orch.execute_flow("f", {"n": i}, message_id=f"m{i}") for i in range(30, 60)))
    assert [r["trace"][0]["inserted"] for r in first] == [1] * 40
    assert [r["trace"][0]["inserted"] for r in mixed] == [0] * 10 + [1] * 20
    assert query(db_url, f'SELECT count(*), count(DISTINCT n) FROM "{name}"') == [(61, 61)]
