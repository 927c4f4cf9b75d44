"""``"database"`` endpoints: SQLAlchemy, SQLite by default, the same code on PostgreSQL.

Config: ``url`` (a SQLAlchemy URL or a SQLite file path) and

- for a target, ``table``: the message's top-level fields are inserted as one row. Table and
  column names must be plain identifiers (they are checked, then quoted by SQLAlchemy; values
  are always bound). ``create_table: true`` creates a missing table, with column types taken
  from the first message or from ``columns`` (``{"amount": "float", ...}``). Inserts are
  idempotent: the row carries ``flow_id:message_id`` in ``idempotency_column`` (default
  ``_wfkit_message_id``, unique; created with the table, used when an existing table has it;
  ``None`` switches it off), and a redelivered message does not add a second row;
- or ``query``: a SQL statement with named parameters (``:customer_id``), bound from the
  message's fields (``params`` maps a parameter to a dotted field path when the names differ)
  and never formatted into the text. A source merges the first row into the message (under
  ``into`` when given), or stores all rows under ``into`` with ``many: true``; a target just
  executes it.

Errors: lost connections, timeouts, locked databases and serialisation failures are transient;
anything else (a missing table, a constraint violation, a bad column) is not.
"""

from __future__ import annotations

import datetime as _dt
import decimal
import re
from collections.abc import Callable, Mapping
from functools import partial
from typing import Any

from wfkit.conditions import get_path
from wfkit.errors import EndpointError, IntegrationConfigError
from wfkit.integration.database import Batched, Database, normalize_url
from wfkit.integration.durable_queue import dumps
from wfkit.integration.endpoints.base import (
    Endpoint,
    MessageContext,
    check_identifier,
    merge_into,
)
from wfkit.redaction import redact_url

__all__ = ["SqlEndpoint", "COLUMN_TYPES", "classify_db_error"]

DEFAULT_IDEMPOTENCY_COLUMN = "_wfkit_message_id"
_MISSING = object()
_TRANSIENT_DB = re.compile(
    r"locked|busy|could not connect|connection (refused|reset|timed out|is closed|failed)|"
    r"server closed|terminating connection|timeout|timed out|too many clients|deadlock|"
    r"could not serialize|the database system is (starting|shutting)",
    re.IGNORECASE,
)


def _column_type(name: str) -> Any:
    import sqlalchemy as sa

    types: dict[str, Callable[[], Any]] = {
        "text": sa.Text,
        "string": sa.Text,
        "integer": sa.BigInteger,
        "bigint": sa.BigInteger,
        "float": sa.Float,
        "double": sa.Float,
        "numeric": sa.Numeric,
        "boolean": sa.Boolean,
        "json": sa.JSON,
        "datetime": lambda: sa.DateTime(timezone=True),
        "date": sa.Date,
    }
    return types[name]()


COLUMN_TYPES: tuple[str, ...] = (
    "text", "string", "integer", "bigint", "float", "double", "numeric", "boolean", "json",
    "datetime", "date",
)


def _infer_type(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "bigint"
    if isinstance(value, float):
        return "float"
    if isinstance(value, decimal.Decimal):
        return "numeric"
    if isinstance(value, dict | list | tuple):
        return "json"
    if isinstance(value, _dt.datetime):
        return "datetime"
    if isinstance(value, _dt.date):
        return "date"
    return "text"


def classify_db_error(exc: BaseException, *, endpoint_id: str, where: str, redact: Any) -> EndpointError:
    """An :class:`EndpointError` for a driver or SQLAlchemy error, transient when it may pass."""
    from sqlalchemy import exc as sa_exc

    transient = isinstance(exc, sa_exc.DisconnectionError | sa_exc.TimeoutError)
    detail: Any = exc
    if isinstance(exc, sa_exc.DBAPIError):
        detail = exc.orig if exc.orig is not None else exc
        transient = transient or exc.connection_invalidated
        if isinstance(exc, sa_exc.OperationalError | sa_exc.InterfaceError):
            transient = transient or bool(_TRANSIENT_DB.search(str(detail)))
    elif isinstance(exc, sa_exc.StatementError) and exc.orig is not None:
        detail = exc.orig
    text = str(detail).strip().splitlines()[0] if str(detail).strip() else ""
    return EndpointError(
        f"{where}: {type(detail).__name__}: {redact(text)}",
        endpoint_id=endpoint_id,
        transient=transient or isinstance(exc, TimeoutError | ConnectionError),
    )



def database_url(endpoint: Endpoint) -> tuple[str, str]:
    """The endpoint's SQLAlchemy ``url`` checked and normalised, and its redacted twin for
    traces and errors (shared by the database and queue endpoints)."""
    try:
        url = normalize_url(endpoint.config["url"], what="url")
    except IntegrationConfigError as exc:
        raise endpoint.fail_config(str(exc), "url") from None
    return url, redact_url(url)

class SqlEndpoint(Endpoint):
    TYPE = "database"
    KEYS = (
        "url",
        "table",
        "query",
        "params",
        "into",
        "many",
        "create_table",
        "idempotency_column",
        "columns",
    )
    REQUIRED = ("url",)

    def check(self) -> None:
        super().check()
        cfg = self.config
        self.url, self.safe_url = database_url(self)
        table = cfg.get("table")
        self.schema: str | None = None
        self.table_name: str | None = None
        if table is not None:
            parts = table.split(".") if isinstance(table, str) else [table]
            if len(parts) > 2:
                raise self.fail_config(f"table must be 'name' or 'schema.name', got {table!r}", "table")
            for part in parts:
                self.identifier(part, "table")
            self.schema, self.table_name = (parts[0], parts[1]) if len(parts) == 2 else (None, parts[0])
        query = cfg.get("query")
        self.statement: Any = None
        self.bind_names: list[str] = []
        if query is not None:
            if not isinstance(query, str) or not query.strip():
                raise self.fail_config("query must be a SQL string with :named parameters", "query")
            from sqlalchemy import text

            self.statement = text(query)
            self.bind_names = list(self.statement.compile().params)
        params = cfg.get("params") or {}
        if not isinstance(params, Mapping) or not all(
            isinstance(k, str) and isinstance(v, str) and v for k, v in params.items()
        ):
            raise self.fail_config(
                "params must map query parameter names to dotted field paths, "
                "e.g. {'cid': 'customer.id'}",
                "params",
            )
        unknown = sorted(set(params) - set(self.bind_names))
        if unknown:
            raise self.fail_config(
                f"params names {', '.join(map(repr, unknown))} that the query does not use "
                f"(its parameters: {', '.join(':' + b for b in self.bind_names) or 'none'})",
                "params",
            )
        self.paths = {b: params.get(b, b) for b in self.bind_names}
        self.into = self.into_key()
        self.many = bool(cfg.get("many", False))
        if self.many and not self.into:
            raise self.fail_config("many: true needs into: the key to store the rows under", "into")
        self.create_table = bool(cfg.get("create_table", False))
        self.idempotency_explicit = "idempotency_column" in cfg
        idem = cfg.get("idempotency_column", DEFAULT_IDEMPOTENCY_COLUMN)
        if idem is not None:
            self.identifier(idem, "idempotency_column")
        self.idempotency_column: str | None = idem
        columns = cfg.get("columns") or {}
        if not isinstance(columns, Mapping):
            raise self.fail_config("columns must map column names to types", "columns")
        for name, kind in columns.items():
            self.identifier(name, "column")
            if kind not in COLUMN_TYPES:
                raise self.fail_config(
                    f"column {name!r} has unknown type {kind!r}; use one of {', '.join(COLUMN_TYPES)}",
                    "columns",
                )
        self.columns = dict(columns)
        self._db: Database | None = None
        self._checked_keys: set[str] = set()
        self._table: Any = None
        self._insert: Any = None
        self._use_idempotency = False

    def check_role(self, role: str, flow_id: str) -> None:
        super().check_role(role, flow_id)
        if role == "source" and self.statement is None:
            raise IntegrationConfigError(
                f"flow {flow_id!r}: database endpoint {self.endpoint_id!r} is a source, so its "
                f"connection_config needs a 'query' (a SELECT with :named parameters)",
                endpoint_id=self.endpoint_id,
                flow_id=flow_id,
                field="query",
            )
        if role == "target" and (self.table_name is None) == (self.statement is None):
            raise IntegrationConfigError(
                f"flow {flow_id!r}: database endpoint {self.endpoint_id!r} is a target, so its "
                f"connection_config needs either 'table' (insert the message as a row) or "
                f"'query' (run a statement), not {'both' if self.table_name else 'neither'}",
                endpoint_id=self.endpoint_id,
                flow_id=flow_id,
                field="table",
            )

    @property
    def db(self) -> Database:
        if self._db is None:
            self._db = self.resources.database(self.url)
        return self._db

    async def _run(self, op: Any, what: str) -> Any:
        self.active()
        try:
            return await self.db.submit(op)
        except EndpointError:
            raise
        except Exception as exc:
            raise classify_db_error(
                exc,
                endpoint_id=self.endpoint_id,
                where=f"{what} on {self.safe_url}",
                redact=self.resources.redactor,
            ) from None

    # -- query -----------------------------------------------------------------------------------

    def _bind(self, data: Mapping[str, Any]) -> dict[str, Any]:
        values = {}
        for name, path in self.paths.items():
            value = get_path(data, path, _MISSING)
            if value is _MISSING:
                raise EndpointError(
                    f"endpoint {self.endpoint_id!r}: the query needs :{name} from the field "
                    f"{path!r}, which the message does not have",
                    endpoint_id=self.endpoint_id,
                )
            if isinstance(value, dict | list):
                value = dumps(value)
            values[name] = value
        return values

    async def fetch(self, data: dict[str, Any], ctx: MessageContext) -> dict[str, Any]:
        values = self._bind(data)
        statement, many = self.statement, self.many

        def op(conn: Any) -> Any:
            result = conn.execute(statement, values).mappings()
            return [dict(r) for r in result] if many else (
                dict(row) if (row := result.first()) is not None else None
            )

        found = await self._run(op, "query")
        merge_into(data, found, self.into, endpoint_id=self.endpoint_id)
        return {"rows": len(found) if many else int(found is not None)}

    # -- insert ----------------------------------------------------------------------------------

    def _prepare_table(self, conn: Any, row: Mapping[str, Any]) -> None:
        """Find (or create) the table and build the insert statement; runs once, on the DB thread."""
        import sqlalchemy as sa

        name, schema = str(self.table_name), self.schema
        if not sa.inspect(conn).has_table(name, schema=schema):
            if not self.create_table:
                raise EndpointError(
                    f"endpoint {self.endpoint_id!r}: table {name!r} does not exist in "
                    f"{self.safe_url}; create it, or set create_table: true",
                    endpoint_id=self.endpoint_id,
                )
            columns = []
            for col, value in row.items():
                if col == self.idempotency_column:
                    continue
                columns.append(sa.Column(col, _column_type(self.columns.get(col) or _infer_type(value))))
            for col, kind in self.columns.items():
                if col not in row:
                    columns.append(sa.Column(col, _column_type(kind)))
            if self.idempotency_column:
                columns.append(sa.Column(self.idempotency_column, sa.String(255), unique=True))
            table = sa.Table(name, sa.MetaData(), *columns, schema=schema)
            table.create(conn, checkfirst=True)
        else:
            table = sa.Table(name, sa.MetaData(), autoload_with=conn, schema=schema)
        idem = self.idempotency_column
        if idem and idem not in table.c:
            if self.idempotency_explicit:
                raise EndpointError(
                    f"endpoint {self.endpoint_id!r}: table {name!r} has no idempotency column "
                    f"{idem!r}; add it (unique) or set idempotency_column: None",
                    endpoint_id=self.endpoint_id,
                )
            idem = None
        self._use_idempotency = bool(idem)
        dialect = conn.dialect.name
        stmt: Any
        if idem and dialect in ("sqlite", "postgresql"):
            if dialect == "sqlite":
                from sqlalchemy.dialects.sqlite import insert
            else:
                from sqlalchemy.dialects.postgresql import insert  # type: ignore[assignment]
            stmt = insert(table).on_conflict_do_nothing(index_elements=[idem])
            self._insert_one = stmt.returning(table.c[idem])  # tells a skipped duplicate apart
        else:
            stmt = self._insert_one = sa.insert(table)
        self._table = table
        # how a shared executemany counts its rows: sqlite's rowcount is exact; PostgreSQL's
        # multi-row insert reports -1, so count the rows RETURNING gives back instead
        self._insert_many: Any = None
        if idem and dialect == "postgresql":
            returning = self._insert_one

            def insert_many(conn: Any, params: list[dict[str, Any]]) -> int:
                return len(conn.execute(returning, params).all())

            self._insert_many = insert_many
        elif not idem:
            plain = stmt

            def insert_all(conn: Any, params: list[dict[str, Any]]) -> int:
                conn.execute(plain, params)
                return len(params)  # no conflict clause: a row that fails raises

            self._insert_many = insert_all
        self._columns = frozenset(table.c.keys())
        self._json_columns = frozenset(c.name for c in table.c if isinstance(c.type, sa.JSON))
        self._insert = stmt  # last: the event loop reads it as "prepared" (see send)

    def _row(self, data: Mapping[str, Any], ctx: MessageContext) -> dict[str, Any]:
        checked = self._checked_keys
        for key in data:
            if key not in checked:  # messages repeat their keys: check each name once
                check_identifier(key, "column", endpoint_id=self.endpoint_id)
                if len(checked) < 10_000:
                    checked.add(key)
        return dict(data)

    def _values(self, row: Mapping[str, Any], key: str) -> dict[str, Any]:
        """The bound values for one row; raises for fields the table has no column for."""
        unknown = [k for k in row if k not in self._columns]
        if unknown:
            raise EndpointError(
                f"endpoint {self.endpoint_id!r}: table {self.table_name!r} has no column(s) "
                f"{', '.join(map(repr, unknown))}; add them, or drop these fields in a "
                f"transformation",
                endpoint_id=self.endpoint_id,
            )
        json_columns = self._json_columns
        values = {
            k: dumps(v) if isinstance(v, dict | list) and k not in json_columns else v
            for k, v in row.items()
        }
        if self._use_idempotency:
            values[self.idempotency_column] = key  # type: ignore[index]
        return values

    def _insert_values(self, conn: Any, values: dict[str, Any]) -> int:
        """Insert one row's values; 0 when the idempotency key skipped a duplicate."""
        if self._use_idempotency:
            return 1 if conn.execute(self._insert_one, values).first() is not None else 0
        conn.execute(self._insert_one, values)
        return 1

    def _insert_row(self, conn: Any, row: Mapping[str, Any], key: str) -> int:
        if self._insert is None:
            self._prepare_table(conn, row)
        return self._insert_values(conn, self._values(row, key))

    async def send(self, data: dict[str, Any], ctx: MessageContext) -> dict[str, Any]:
        if self.statement is not None:
            values = self._bind(data)
            statement = self.statement
            count = await self._run(lambda conn: conn.execute(statement, values).rowcount, "execute")
            return {"rowcount": count}
        try:
            row = self._row(data, ctx)
        except IntegrationConfigError as exc:  # a field that cannot be a column
            raise EndpointError(str(exc), endpoint_id=self.endpoint_id) from None
        key = ctx.idempotency_key
        if self._insert is None:  # the first row finds (or creates) the table
            return {"inserted": await self._run(lambda conn: self._insert_row(conn, row, key),
                                                f"insert into {self.table_name}")}
        values = self._values(row, key)
        op = Batched(self._insert, values, partial(self._insert_values, values=values), 1,
                     self._insert_many)
        inserted = await self._run(op, f"insert into {self.table_name}")
        return {"inserted": inserted}

