"""A database's Data tab: the built-in viewer of `/api/v1/databases/{id}/tables|rows|query|keys`
as pages. SQL engines: the tables, a table's rows a page at a time (with the API's `next`
cursor), and the read-only SQL console; Redis: the key browser, a SCAN step a page."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Query, Request, Response

from ipaas.api.routes_databases import data_viewer
from ipaas.databases.viewer import MAX_SQL_CHARS, DataViewer
from ipaas.domain.databases import Engine
from ipaas.domain.errors import IpaasError
from ipaas.store.models import Database
from ipaas.web.auth import Form, checked_form, first
from ipaas.web.routes_databases import owned, page

router = APIRouter(prefix="/databases/{db_id}/data")
PAGE_ROWS = 50
KEYS_PER_PAGE = 100


@router.get("")
async def data_page(
    request: Request,
    table: str | None = Query(None, max_length=256),
    schema: str | None = Query(None, max_length=256),
    after: str | None = Query(None, min_length=1, max_length=4096),
    pattern: str = Query("*", min_length=1, max_length=512),
    cursor: str = Query("0", max_length=20),
    db: Database = Depends(owned),
    viewer: DataViewer = Depends(data_viewer),
) -> Response:
    if db.engine == Engine.REDIS:
        return await _keys(request, db, viewer, pattern, cursor)
    return await _sql(request, db, viewer, table, schema, after)


async def _sql(
    request: Request,
    db: Database,
    viewer: DataViewer,
    table: str | None,
    schema: str | None,
    after: str | None,
    status: int = 200,
    **context: Any,
) -> Response:
    """The tables, and the chosen table's page of rows (or the reason none can be shown)."""
    tables: list[Any] = []
    shown: dict[str, Any] | None = None
    problem = None
    try:
        if db.state == "running":
            tables = await viewer.tables(db)
            if table:
                rows = await viewer.rows(db, table, schema, PAGE_ROWS, after)
                shown = {"page": rows, "first": after is None}
    except IpaasError as exc:
        problem = exc.detail
    context.setdefault("sql", "")
    context.setdefault("result", None)
    context.setdefault("console_error", None)
    return page(
        request, "database_data.html", db, "data", status, tables=tables, shown=shown,
        problem=problem, max_sql=MAX_SQL_CHARS, **context,
    )  # fmt: skip


async def _keys(
    request: Request, db: Database, viewer: DataViewer, pattern: str, cursor: str
) -> Response:
    listing: dict[str, Any] = {"cursor": "0", "keys": []}
    problem = None
    try:
        if db.state == "running":
            listing = await viewer.keys(db, pattern, cursor, KEYS_PER_PAGE)
    except IpaasError as exc:
        problem = exc.detail
    return page(
        request, "database_keys.html", db, "data", pattern=pattern, cursor=cursor,
        keys=listing["keys"], next_cursor=listing["cursor"], problem=problem,
    )  # fmt: skip


@router.post("/query")
async def run_query(
    request: Request,
    db: Database = Depends(owned),
    form: Form = Depends(checked_form),
    viewer: DataViewer = Depends(data_viewer),
) -> Response:
    """The read-only console: the answer (or the database's refusal) under the query."""
    sql = first(form, "sql", MAX_SQL_CHARS + 1)
    result, error, status = None, None, 200
    try:
        result = await viewer.console(db, sql)
    except IpaasError as exc:
        error, status = exc.detail, 422
    return await _sql(
        request, db, viewer, None, None, None, status, sql=sql, result=result, console_error=error
    )
