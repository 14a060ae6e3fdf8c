"""Paging through a table in the data viewer, the pure part: what the catalog says of a table
(its columns and unique keys), which order pages follow, the query of one page, and the
cursor that carries where the next page starts. No I/O.

Pages follow a key, not an offset: the table's primary key, else a unique index whose columns
are all NOT NULL (and, on MariaDB, of a type whose literal reads back exactly); the next page is
the rows after the last one shown (`WHERE key > last ORDER BY key LIMIT n`), so a page costs
the same wherever it is and rows added or removed meanwhile neither repeat nor go missing.
A PostgreSQL table with no such key pages by its physical row id (ctid: stable unless the
table is rewritten or rows are updated meanwhile); a view, or a MariaDB table with no such key,
falls back to an offset, which says so (`paging: "offset"`).

Every name is the catalog's and is quoted; a key value from a cursor is a quoted literal, or on
MariaDB a number or hex string that matched its pattern first.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ipaas.domain.databases import Engine
from ipaas.domain.dbviewer import Column, TableRef, quote_ident, quote_literal
from ipaas.domain.errors import Conflict, InvalidInput

KEY, CTID, OFFSET = "key", "ctid", "offset"
# MariaDB key columns by how a value is written back into SQL (other types do not page by key).
_MY_NUMBERS = frozenset({"tinyint", "smallint", "mediumint", "int", "bigint", "decimal", "year"})
_MY_TEXTS = frozenset(
    {"char", "varchar", "tinytext", "text", "mediumtext", "longtext"}
    | {"date", "datetime", "timestamp", "time"}
)
_MY_BYTES = frozenset({"binary", "varbinary", "tinyblob", "blob", "mediumblob", "longblob"})
_NUMBER = re.compile(r"^-?[0-9]{1,65}(\.[0-9]{1,38})?$")
_HEX = re.compile(r"^(?:[0-9A-F]{2})*$")
_PG_ARGS = 50  # jsonb_build_array takes at most 100 arguments: longer rows are joined with ||


@dataclass(frozen=True)
class CatalogColumn:
    name: str
    type: str
    not_null: bool
    data_type: str  # MariaDB's bare type name (decides how a key value is written); PG: ""


@dataclass(frozen=True)
class TableInfo:
    ref: TableRef
    kind: str  # PostgreSQL's relkind (r, p, v, m); MariaDB's table_type
    columns: tuple[CatalogColumn, ...]
    unique_keys: tuple[tuple[bool, tuple[str, ...]], ...]  # (primary?, columns), primary first

    def shown_columns(self) -> list[Column]:
        primary = next((cols for is_pk, cols in self.unique_keys if is_pk), ())
        return [Column(c.name, c.type, c.name in primary) for c in self.columns]


@dataclass(frozen=True)
class Order:
    mode: str  # KEY, CTID or OFFSET
    keys: tuple[str, ...] = ()  # KEY: the key's columns, in the index's order


@dataclass(frozen=True)
class Position:
    """Where a page starts: after these key values (KEY, CTID), or at an offset (OFFSET)."""

    after: tuple[str, ...] = ()
    offset: int = 0


# --- the catalog -------------------------------------------------------------------------------
def catalog_query(engine: str, name: str, schema: str | None) -> str:
    """One JSON line per table or view of that name (in `schema` when given): its columns and
    unique keys. The name is only ever a literal looked for in the catalog."""
    lit = quote_literal(engine, name)
    if engine == Engine.POSTGRES:
        in_schema = f"AND n.nspname = {quote_literal(engine, schema)} " if schema else ""
        return (
            "SELECT json_build_object('schema', n.nspname, 'name', c.relname, 'kind', c.relkind, "
            "'rows', CASE WHEN c.reltuples < 0 THEN NULL ELSE c.reltuples::bigint END, "
            "'columns', (SELECT json_agg(json_build_array(a.attname, "
            "format_type(a.atttypid, a.atttypmod), a.attnotnull, '') ORDER BY a.attnum) "
            "FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attnum > 0 "
            "AND NOT a.attisdropped), "
            "'keys', (SELECT json_agg(json_build_array(i.indisprimary, "
            "(SELECT json_agg(a.attname ORDER BY k.n) "
            "FROM unnest(i.indkey::int2[]) WITH ORDINALITY k(num, n) "
            "JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = k.num "
            "WHERE k.n <= i.indnkeyatts)) "
            "ORDER BY i.indisprimary DESC, i.indnkeyatts, i.indexrelid) "
            "FROM pg_index i WHERE i.indrelid = c.oid AND i.indisunique "
            "AND i.indpred IS NULL AND i.indexprs IS NULL))::text "
            "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            f"WHERE c.relname = {lit} {in_schema}AND c.relkind IN ('r', 'p', 'v', 'm') "
            "AND n.nspname NOT IN ('pg_catalog', 'information_schema') "
            "AND n.nspname NOT LIKE 'pg_toast%'"
        )
    in_schema = f"AND t.table_schema = {quote_literal(engine, schema)} " if schema else ""
    # The subqueries name the table by constants, not by t's columns: MariaDB then opens only
    # that table's definition; correlated, a page's catalog took ~45 ms instead of ~5.
    return (
        "SELECT JSON_OBJECT('schema', t.table_schema, 'name', t.table_name, "
        "'kind', t.table_type, 'rows', t.table_rows, "
        "'columns', (SELECT JSON_ARRAYAGG(JSON_ARRAY(c.column_name, c.column_type, "
        "c.is_nullable = 'NO', c.data_type) ORDER BY c.ordinal_position) "
        "FROM information_schema.columns c "
        f"WHERE c.table_schema = DATABASE() AND c.table_name = {lit}), "
        "'keys', (SELECT JSON_ARRAYAGG(JSON_ARRAY(s.index_name, s.seq_in_index, s.column_name) "
        "ORDER BY s.index_name = 'PRIMARY' DESC, s.index_name, s.seq_in_index) "
        "FROM information_schema.statistics s WHERE s.table_schema = DATABASE() "
        f"AND s.table_name = {lit} AND s.non_unique = 0)) "
        f"FROM information_schema.tables t WHERE t.table_schema = DATABASE() {in_schema}"
        f"AND t.table_name = {lit}"
    )


def _json(value: Any) -> Any:
    """MariaDB hands a subquery's JSON back as a string inside the object: read it too."""
    return json.loads(value) if isinstance(value, str) else value


def parse_catalog(engine: str, output: str) -> list[TableInfo]:
    found: list[TableInfo] = []
    for line in output.splitlines():
        if not line.startswith("{"):
            continue
        doc = json.loads(line)
        columns = tuple(
            CatalogColumn(str(n), str(t), bool(nn), str(dt).lower())
            for n, t, nn, dt in _json(doc.get("columns")) or []
        )
        keys = _json(doc.get("keys")) or []
        if engine == Engine.POSTGRES:
            unique = tuple((bool(pk), tuple(cols or ())) for pk, cols in keys)
        else:
            by_index: dict[str, list[str]] = {}
            for index, _seq, column in keys:
                by_index.setdefault(str(index), []).append(str(column))
            unique = tuple((index == "PRIMARY", tuple(cols)) for index, cols in by_index.items())
        rows = doc.get("rows")
        ref = TableRef(
            str(doc["schema"]), str(doc["name"]), int(rows) if rows is not None else None
        )
        found.append(TableInfo(ref, str(doc.get("kind") or ""), columns, unique))
    return found


def choose_table(tables: list[TableInfo], schema: str | None, name: str) -> TableInfo | None:
    """The table of exactly that name (in `schema`, else the only one, else public's)."""
    matches = [t for t in tables if t.ref.name == name and schema in (None, t.ref.schema)]
    if schema is None and len(matches) > 1:
        matches = [t for t in matches if t.ref.schema == "public"]
    return matches[0] if len(matches) == 1 else None


def _pages_by(engine: str, column: CatalogColumn) -> bool:
    if not column.not_null:
        return False
    if engine == Engine.POSTGRES:
        return True
    return column.data_type in _MY_NUMBERS | _MY_TEXTS | _MY_BYTES


def choose_order(engine: str, table: TableInfo) -> Order:
    by_name = {c.name: c for c in table.columns}
    for _primary, cols in table.unique_keys:
        if cols and all(c in by_name and _pages_by(engine, by_name[c]) for c in cols):
            return Order(KEY, cols)
    if engine == Engine.POSTGRES and table.kind in ("r", "m"):
        return Order(CTID)
    return Order(OFFSET)


# --- one page ----------------------------------------------------------------------------------
def _key_expr(engine: str, table: TableInfo, name: str) -> str:
    """A key column as text in a row's output (what a cursor carries)."""
    col = quote_ident(engine, name)
    if engine == Engine.POSTGRES:
        return f"t.{col}::text"
    kind = next(c.data_type for c in table.columns if c.name == name)
    return f"HEX(t.{col})" if kind in _MY_BYTES else f"CAST(t.{col} AS CHAR)"


def _key_literal(engine: str, table: TableInfo, name: str, value: str) -> str:
    if engine == Engine.POSTGRES:
        return quote_literal(engine, value)  # untyped: read as the column's type
    kind = next(c.data_type for c in table.columns if c.name == name)
    if kind in _MY_NUMBERS and _NUMBER.match(value):
        return value
    if kind in _MY_BYTES and _HEX.match(value):
        return f"X'{value}'"
    if kind in _MY_TEXTS:
        return quote_literal(engine, value)
    raise InvalidInput("the cursor does not fit this table's key", code="invalid_cursor")


def _after(engine: str, table: TableInfo, order: Order, after: Sequence[str]) -> str:
    if order.mode == CTID:
        return f"WHERE t.ctid > {quote_literal(engine, after[0])} "
    cols = [f"t.{quote_ident(engine, c)}" for c in order.keys]
    values = [_key_literal(engine, table, c, v) for c, v in zip(order.keys, after, strict=True)]
    if engine == Engine.POSTGRES or len(cols) == 1:
        if len(cols) == 1:
            return f"WHERE {cols[0]} > {values[0]} "
        return f"WHERE ({', '.join(cols)}) > ({', '.join(values)}) "
    # MariaDB: spelled out, which its optimiser turns into an index range.
    terms = []
    for i in range(len(cols)):
        equal = [f"{cols[j]} = {values[j]}" for j in range(i)]
        terms.append("(" + " AND ".join([*equal, f"{cols[i]} > {values[i]}"]) + ")")
    return f"WHERE ({' OR '.join(terms)}) "


def order_columns(table: TableInfo, order: Order) -> list[str]:
    if order.mode == KEY:
        return list(order.keys)
    return ["ctid"] if order.mode == CTID else [c.name for c in table.columns[:1]]


def page_query(engine: str, table: TableInfo, order: Order, position: Position, limit: int) -> str:
    """`limit` rows as one JSON array a line: the columns, then the order's key as text."""
    q = quote_ident
    source = f"{q(engine, table.ref.schema)}.{q(engine, table.ref.name)}"
    shown = [f"t.{q(engine, c.name)}" for c in table.columns]
    if order.mode == KEY:
        keys = [_key_expr(engine, table, c) for c in order.keys]
        sort = ", ".join(f"t.{q(engine, c)}" for c in order.keys)
    elif order.mode == CTID:
        keys, sort = ["t.ctid::text"], "t.ctid"
    else:
        keys, sort = [], ", ".join(shown[:1])
    where = _after(engine, table, order, position.after) if position.after else ""
    tail = f"{where}{f'ORDER BY {sort} ' if sort else ''}LIMIT {int(limit)}"
    if order.mode == OFFSET and position.offset:
        tail += f" OFFSET {int(position.offset)}"
    items = shown + keys
    if engine == Engine.POSTGRES:
        chunks = [items[i : i + _PG_ARGS] for i in range(0, len(items), _PG_ARGS)] or [[]]
        row = " || ".join(f"jsonb_build_array({', '.join(chunk)})" for chunk in chunks)
        return f"SELECT ({row})::text FROM {source} t {tail}"
    return f"SELECT JSON_ARRAY({', '.join(items)}) FROM {source} t {tail}"


def split_rows(
    rows: list[list[Any]], table: TableInfo, order: Order
) -> tuple[list[list[Any]], tuple[str, ...]]:
    """Each output row's shown values, and the last row's key values (as text): only the last
    one is needed, for the next page's cursor."""
    n = len(table.columns)
    last = tuple(str(v) for v in rows[-1][n:]) if rows else ()
    return [r[:n] for r in rows], last


# --- the cursor ----------------------------------------------------------------------------------
def cursor_payload(db_id: str, table: TableInfo, order: Order, position: Position) -> str:
    """What a `next` cursor holds (the viewer encrypts it: opaque and tamper-proof)."""
    return json.dumps(
        {
            "d": db_id, "s": table.ref.schema, "t": table.ref.name, "m": order.mode,
            "k": list(order.keys), "a": list(position.after), "o": position.offset,
        },
        separators=(",", ":"),
    )  # fmt: skip


def read_cursor(payload: str, db_id: str, table: TableInfo, order: Order) -> Position:
    """The position a cursor gives, for this database and table; InvalidInput when it is
    another's, Conflict (`stale_cursor`) when the table's key changed since it was given."""
    try:
        doc = json.loads(payload)
        mine = (doc["d"], doc["s"], doc["t"]) == (db_id, table.ref.schema, table.ref.name)
        same_key = (doc["m"], tuple(doc["k"])) == (order.mode, order.keys)
        after = tuple(str(v) for v in doc["a"])
        offset = int(doc["o"])
    except (ValueError, KeyError, TypeError):
        mine = False
    if not mine:
        raise InvalidInput("the cursor is not one this table's pages gave", code="invalid_cursor")
    if not same_key:
        raise Conflict(
            "the table's key changed since this cursor: start again", code="stale_cursor"
        )
    wanted = len(order.keys) if order.mode == KEY else 1 if order.mode == CTID else 0
    if len(after) != wanted or offset < 0:
        raise InvalidInput("the cursor is not one this table's pages gave", code="invalid_cursor")
    return Position(after, offset)
