"""The built-in data viewer (SPEC §4): tables and their rows, a read-only SQL console, Redis
keys. Everything runs inside the database's own container through its `ipaas-db` script, as the
SELECT-only viewer login (by an unprivileged OS user), so no driver loads here and a query can
do no more than that login may. Pages of rows go through a client kept open per database
(`ViewerSessions`) and follow the table's key (`domain/dbpaging.py`); the console starts a
client of its own for each query."""

from __future__ import annotations

import json
import re
import secrets
from dataclasses import dataclass
from typing import Any

from ipaas.auth.keys import Cipher
from ipaas.config import DatabaseSettings
from ipaas.databases.links import credentials_of
from ipaas.databases.viewer_sessions import ViewerSessions
from ipaas.domain.databases import DbState, Engine
from ipaas.domain.dbpaging import (
    OFFSET,
    Order,
    Position,
    TableInfo,
    catalog_query,
    choose_order,
    choose_table,
    cursor_payload,
    order_columns,
    page_query,
    parse_catalog,
    read_cursor,
    split_rows,
)
from ipaas.domain.dbviewer import (
    Column,
    QueryResult,
    TableRef,
    parse_csv_result,
    parse_json_rows,
    parse_tables,
    parse_xml_result,
    redis_preview,
)
from ipaas.domain.errors import Conflict, Forbidden, InvalidInput, NotFoundError
from ipaas.runtime.databases import DatabaseRuntime, ExecResult, SessionLost
from ipaas.store.models import Database

MAX_SQL_CHARS = 10_000
# Errors that mean "this login may not write": PostgreSQL's SQLSTATEs for a missing privilege
# and a read-only transaction, MariaDB's "command denied" errors.
_READ_ONLY = re.compile(r"ERROR:\s+(42501|25006)|ERROR (1142|1044|1227|1045|1370|1143)\b")
_TIMEOUT = re.compile(r"ERROR:\s+57014|ERROR 1969\b|took longer than")
_ERROR_LINE = re.compile(r"^(ERROR.*)$", re.MULTILINE)
# An error in a session's output: psql's `psql:<stdin>:N: ERROR: ...`, MariaDB's `ERROR nnnn`.
_SESSION_ERROR = re.compile(r"^(?:psql:[^:]*:\d+: )?(ERROR.*)$", re.MULTILINE)


@dataclass(frozen=True)
class Page:
    table: TableRef
    columns: list[Column]
    rows: list[list[Any]]
    truncated: bool  # more rows follow, or the byte cap cut the page
    next: str | None  # the cursor of the next page
    paging: str  # key, ctid or offset
    order_by: list[str]


class DataViewer:
    def __init__(
        self, runtime: DatabaseRuntime, cipher: Cipher, settings: DatabaseSettings
    ) -> None:
        self.runtime = runtime
        self.cipher = cipher
        self.settings = settings
        self.sessions = ViewerSessions(runtime, settings.viewer_session_idle_s)

    def _database(self, db: Database) -> str:
        return credentials_of(self.cipher, db).database

    @staticmethod
    def _container(db: Database) -> str:
        if db.state != DbState.RUNNING or not db.container_id:
            raise Conflict(f"not possible while the database is {db.state}", code="invalid_state")
        return db.container_id

    @staticmethod
    def _sql_engine(db: Database) -> None:
        if db.engine == Engine.REDIS:
            raise InvalidInput("Redis has keys, not tables: see /keys", code="not_sql")

    async def _run(self, db: Database, argv: list[str], stdin: str | None = None) -> ExecResult:
        timeout = self.settings.console_timeout_s + 10
        return await self.runtime.exec(
            self._container(db), argv, timeout, stdin.encode() if stdin is not None else None
        )

    # --- tables and rows ----------------------------------------------------------------------
    async def tables(self, db: Database) -> list[TableRef]:
        self._sql_engine(db)
        result = await self._run(db, ["ipaas-db", "tables", self._database(db)])
        if not result.ok:
            raise Conflict(
                f"listing the tables failed: {result.output[-300:]}", code="viewer_failed"
            )
        return parse_tables(result.output)

    async def _ask(self, db: Database, sql: str) -> tuple[str, bool]:
        """One statement on the database's viewer session: its output, and whether the byte
        cap cut it. An error the engine printed is a 409 `viewer_failed` with its words."""
        s = self.settings
        try:
            out, cut = await self.sessions.ask(
                self._container(db), db.engine, self._database(db), sql,
                s.viewer_bytes_max, s.console_timeout_s,
            )  # fmt: skip
        except SessionLost as exc:
            raise Conflict(f"reading the table failed: {exc}", code="viewer_failed") from None
        # The substring test first: the pattern alone took ~0.4 ms over a page of 1,000 rows.
        error = _SESSION_ERROR.search(out) if "ERROR" in out else None
        if error is not None:
            raise Conflict(
                f"reading the table failed: {error.group(1)[:500]}", code="viewer_failed"
            )
        return out, cut

    async def table_info(self, db: Database, name: str, schema: str | None) -> TableInfo:
        """The table (or view) of that name as the catalog has it; 404 when there is none."""
        self._sql_engine(db)
        out, _ = await self._ask(db, catalog_query(db.engine, name, schema))
        found = choose_table(parse_catalog(db.engine, out), schema, name)
        if found is None:
            raise NotFoundError.of("table")
        return found

    async def rows(
        self, db: Database, name: str, schema: str | None, limit: int, cursor: str | None
    ) -> Page:
        """A page of rows in the order of the table's key; `next` goes on after its last row."""
        if not 1 <= limit <= self.settings.viewer_page_rows_max:
            raise InvalidInput(
                f"limit: between 1 and {self.settings.viewer_page_rows_max}", code="invalid_limit"
            )
        table = await self.table_info(db, name, schema)
        order = choose_order(db.engine, table)
        position = Position() if cursor is None else self._read_cursor(db, cursor, table, order)
        out, cut = await self._ask(db, page_query(db.engine, table, order, position, limit + 1))
        found, partial = parse_json_rows(out, limit + 1)
        rows, last_key = split_rows(found[:limit], table, order)
        more = cut or partial or len(found) > limit
        if more and not rows:
            raise Conflict(
                f"a row of this table is larger than the viewer's {self.settings.viewer_bytes_max}"
                " bytes: look at it through the console with fewer columns",
                code="row_too_large",
            )
        after = Position(offset=position.offset + len(rows))
        if order.mode != OFFSET:
            after = Position(after=last_key) if rows else position
        return Page(
            table.ref, table.shown_columns(), rows, more,
            self._cursor(db, table, order, after) if more else None,
            order.mode, order_columns(table, order),
        )  # fmt: skip

    def _cursor(self, db: Database, table: TableInfo, order: Order, position: Position) -> str:
        return self.cipher.encrypt(cursor_payload(db.id, table, order, position))

    def _read_cursor(self, db: Database, cursor: str, table: TableInfo, order: Order) -> Position:
        try:
            payload = self.cipher.decrypt(cursor)
        except ValueError:
            raise InvalidInput(
                "the cursor is not one the viewer gave: pass `next` as it came",
                code="invalid_cursor",
            ) from None
        return read_cursor(payload, db.id, table, order)

    # --- the console --------------------------------------------------------------------------
    async def console(self, db: Database, sql: str) -> QueryResult:
        self._sql_engine(db)
        if not sql.strip() or len(sql) > MAX_SQL_CHARS or "\x00" in sql:
            raise InvalidInput(f"a query of 1 to {MAX_SQL_CHARS} characters", code="invalid_query")
        s = self.settings
        token = f"NULL-{secrets.token_hex(8)}"
        argv = [
            "ipaas-db", "console", self._database(db), str(int(s.console_timeout_s * 1000)),
            str(s.console_rows_max), str(s.viewer_bytes_max), token,
        ]  # fmt: skip
        result = await self._run(db, argv, sql.strip().rstrip(";"))
        if not result.ok:
            raise _console_error(result)
        if db.engine == Engine.POSTGRES:
            cut = len(result.output.encode()) >= s.viewer_bytes_max
            return parse_csv_result(result.output, token, s.console_rows_max, cut)
        return parse_xml_result(result.output, s.console_rows_max)

    # --- Redis keys ---------------------------------------------------------------------------
    async def keys(self, db: Database, pattern: str, cursor: str, count: int) -> dict[str, Any]:
        if db.engine != Engine.REDIS:
            raise InvalidInput("keys are Redis's: see /tables", code="not_redis")
        if not cursor.isdigit() or len(cursor) > 20:
            raise InvalidInput("cursor: the number the previous page gave", code="invalid_cursor")
        argv = [
            "ipaas-db",
            "keys",
            cursor,
            pattern,
            str(count),
            str(self.settings.redis_preview_bytes),
        ]
        result = await self._run(db, argv)
        if not result.ok:
            raise Conflict(
                f"scanning the keys failed: {result.output[-300:]}", code="viewer_failed"
            )
        page = json.loads(result.output)
        keys = page.get("keys") or []
        for key in keys if isinstance(keys, list) else []:
            key["preview"] = redis_preview(key.get("preview"))
        return {"cursor": str(page["cursor"]), "keys": keys if isinstance(keys, list) else []}


def _error_of(result: ExecResult) -> str:
    found = _ERROR_LINE.findall(result.output)
    return (found[-1] if found else result.output.strip()[-300:])[:500]


def _console_error(result: ExecResult) -> Exception:
    message = _error_of(result)
    if _READ_ONLY.search(result.output):
        return Forbidden(
            f"the console is read-only (it runs as a SELECT-only login): {message}",
            code="read_only",
        )
    if _TIMEOUT.search(result.output):
        return InvalidInput(f"the query ran past its time limit: {message}", code="query_timeout")
    return InvalidInput(f"the query failed: {message}", code="query_failed")
