"""The built-in data viewer, the pure part: quoting the names a user picks, the queries that page
through a table, and reading what the engines' clients print. No I/O.

A table name comes from the user only to be looked up among the tables the catalog lists; the
name that goes into a query is the catalog's, always quoted (a quote inside doubled), never
pasted in as it came.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from typing import Any

from ipaas.domain.databases import Engine
from ipaas.domain.errors import InvalidInput

XSI_NIL = "{http://www.w3.org/2001/XMLSchema-instance}nil"


@dataclass(frozen=True)
class TableRef:
    schema: str
    name: str
    estimated_rows: int | None


@dataclass(frozen=True)
class Column:
    name: str
    type: str | None
    primary_key: bool = False


@dataclass(frozen=True)
class QueryResult:
    columns: list[Column]
    rows: list[list[Any]]
    truncated: bool


def quote_ident(engine: str, name: str) -> str:
    """An identifier as the engine reads it whatever it holds: in double quotes (PostgreSQL)
    or backticks (MariaDB), the quote character doubled inside."""
    if "\x00" in name:
        raise InvalidInput("a name cannot hold a NUL character", code="invalid_table")
    if engine == Engine.POSTGRES:
        return '"' + name.replace('"', '""') + '"'
    return "`" + name.replace("`", "``") + "`"


def quote_literal(engine: str, text: str) -> str:
    """A string literal: quotes doubled; MariaDB also reads backslash escapes, so backslashes
    are doubled there (PostgreSQL's standard strings take them as they are)."""
    if engine == Engine.MARIADB:
        text = text.replace("\\", "\\\\")
    return "'" + text.replace("'", "''") + "'"


def parse_tables(output: str) -> list[TableRef]:
    found: list[TableRef] = []
    for line in output.splitlines():
        parts = line.split("\t")
        if len(parts) != 3:
            continue
        schema, name, rows = parts
        found.append(TableRef(schema, name, int(rows) if rows.strip().isdigit() else None))
    return found


def parse_json_rows(output: str, limit: int) -> tuple[list[list[Any]], bool]:
    """The rows of a page (the lines that are JSON arrays); a last line cut by the byte cap is
    dropped (and reported).

    The lines are decoded as one JSON array, in one call: a page of 1,000 rows decoded line by
    line spent about 3.5 ms in Python's json module, this about a third of it. Only when that
    fails (a cut line) are they read one by one to find where the good rows end."""
    lines = [line for line in output.split("\n") if line.startswith("[")]
    try:
        rows: list[list[Any]] = json.loads("[" + ",".join(lines) + "]")
    except json.JSONDecodeError:
        rows = []
        for line in lines:
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                return rows[:limit], True
    return rows[:limit], len(rows) > limit


def parse_csv_result(output: str, null_token: str, limit: int, cut: bool) -> QueryResult:
    """psql --csv: a header and the rows; NULL is printed as the token. `cut`: the output hit
    the byte cap, so its last row may be partial (a cut inside quotes still parses) and goes."""
    reader = csv.reader(io.StringIO(output))
    header = next(reader, None)
    rows: list[list[Any]] = []
    try:
        for record in reader:
            rows.append([None if v == null_token else v for v in record])
    except csv.Error:
        cut = True
    if rows and (cut or (header and len(rows[-1]) != len(header))):
        rows.pop()
        cut = True
    columns = [Column(name, None) for name in header or []]
    return QueryResult(columns, rows[:limit], cut or len(rows) > limit)


def parse_xml_result(output: str, limit: int) -> QueryResult:
    """mariadb --xml: one `resultset` (the last), rows of named fields, NULL marked xsi:nil."""
    cut = False
    text = output
    if "</resultset>" not in text:  # the byte cap fell inside: keep the rows that are whole
        cut = True
        end = text.rfind("</row>")
        text = (text[: end + len("</row>")] if end >= 0 else text[: text.find(">") + 1]) + (
            "</resultset>"
        )
    body = text[text.find("<resultset") :]
    if "<resultset" not in text:
        return QueryResult([], [], cut)
    import xml.etree.ElementTree as ET  # only a MariaDB console needs it

    root = ET.fromstring(body)
    columns: list[Column] = []
    rows: list[list[Any]] = []
    for row in root.iter("row"):
        fields = list(row.iter("field"))
        if not columns:
            columns = [Column(f.get("name") or "", None) for f in fields]
        rows.append([None if f.get(XSI_NIL) == "true" else (f.text or "") for f in fields])
    return QueryResult(columns, rows[:limit], cut or len(rows) > limit)


def redis_preview(value: Any) -> Any:
    """cjson writes an empty Lua table as {}: an empty preview is a list."""
    return [] if value == {} else value
