"""The built-in data viewer (SPEC §4): tables and their rows, a read-only SQL console, Redis
keys. Everything runs inside the database's own container through its `ipaas-db` script, as the
SELECT-only viewer login (the console's client also as an unprivileged OS user), so no driver
loads here and a query can do no more than that login may."""

from __future__ import annotations

import json
import re
import secrets
from typing import Any

from ipaas.auth.keys import Cipher
from ipaas.config import DatabaseSettings
from ipaas.databases.links import credentials_of
from ipaas.domain.databases import DbState, Engine
from ipaas.domain.dbviewer import (
    Column,
    QueryResult,
    TableRef,
    columns_query,
    find_table,
    parse_columns,
    parse_csv_result,
    parse_json_rows,
    parse_tables,
    parse_xml_result,
    redis_preview,
    rows_query,
)
from ipaas.domain.errors import Conflict, Forbidden, InvalidInput, NotFoundError
from ipaas.runtime.databases import DatabaseRuntime, ExecResult
from ipaas.store.models import Database

MAX_SQL_CHARS = 10_000
# Errors that mean "this login may not write": PostgreSQL's SQLSTATEs for a missing privilege
# and a read-only transaction, MariaDB's "command denied" errors.
_READ_ONLY = re.compile(r"ERROR:\s+(42501|25006)|ERROR (1142|1044|1227|1045|1370|1143)\b")
_TIMEOUT = re.compile(r"ERROR:\s+57014|ERROR 1969\b|took longer than")
_ERROR_LINE = re.compile(r"^(ERROR.*)$", re.MULTILINE)


class DataViewer:
    def __init__(
        self, runtime: DatabaseRuntime, cipher: Cipher, settings: DatabaseSettings
    ) -> None:
        self.runtime = runtime
        self.cipher = cipher
        self.settings = settings

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

    async def _view(self, db: Database, sql: str) -> str:
        argv = ["ipaas-db", "view", self._database(db), str(self.settings.viewer_bytes_max)]
        result = await self._run(db, argv, sql)
        if not result.ok:
            raise Conflict(f"reading the table failed: {_error_of(result)}", code="viewer_failed")
        return result.output

    async def table(
        self, db: Database, name: str, schema: str | None
    ) -> tuple[TableRef, list[Column]]:
        found = find_table(await self.tables(db), schema, name)
        if found is None:
            raise NotFoundError.of("table")
        return found, parse_columns(await self._view(db, columns_query(db.engine, found)))

    async def rows(
        self, db: Database, name: str, schema: str | None, limit: int, offset: int
    ) -> tuple[TableRef, list[Column], list[list[Any]], bool]:
        if not 1 <= limit <= self.settings.viewer_page_rows_max:
            raise InvalidInput(
                f"limit: between 1 and {self.settings.viewer_page_rows_max}", code="invalid_limit"
            )
        table, columns = await self.table(db, name, schema)
        sql = rows_query(db.engine, table, columns, limit + 1, offset)
        rows, cut = parse_json_rows(await self._view(db, sql), limit)
        return table, columns, rows, cut

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
