"""Keyset paging, the pure part: which order a table's pages follow, the page query (names
quoted, cursor values as literals that cannot become SQL), and what a cursor may carry."""

from __future__ import annotations

import json

import pytest

from ipaas.domain.dbpaging import (
    CTID,
    KEY,
    OFFSET,
    CatalogColumn,
    Order,
    Position,
    TableInfo,
    choose_order,
    cursor_payload,
    page_query,
    parse_catalog,
    read_cursor,
    split_rows,
)
from ipaas.domain.dbviewer import TableRef, parse_json_rows
from ipaas.domain.errors import Conflict, InvalidInput


def table(
    columns: list[tuple[str, str, bool, str]],
    keys: list[tuple[bool, tuple[str, ...]]],
    kind: str = "r",
) -> TableInfo:
    return TableInfo(
        TableRef("public", "t", 10),
        kind,
        tuple(CatalogColumn(*c) for c in columns),
        tuple(keys),
    )


def test_the_order_is_the_primary_key_then_a_unique_not_null_key_then_ctid_or_offset() -> None:
    cols = [
        ("id", "int", True, "int"),
        ("email", "text", True, "varchar"),
        ("x", "float", False, "double"),
    ]
    assert choose_order("postgres", table(cols, [(True, ("id",))])) == Order(KEY, ("id",))
    assert choose_order("mariadb", table(cols, [(False, ("x",)), (False, ("email",))])) == Order(
        KEY, ("email",)
    )  # x may be NULL: not a key to page by
    assert choose_order("postgres", table(cols, [])) == Order(CTID)
    assert choose_order("postgres", table(cols, [], kind="v")) == Order(OFFSET)  # a view
    assert choose_order("postgres", table(cols, [], kind="p")) == Order(OFFSET)  # partitioned
    assert choose_order("mariadb", table(cols, [])) == Order(OFFSET)
    # MariaDB: a float key does not read back exactly, so it is not paged by.
    floats = [("f", "double", True, "double")]
    assert choose_order("mariadb", table(floats, [(True, ("f",))])) == Order(OFFSET)


def test_the_page_query_quotes_names_and_cursor_values() -> None:
    cols = [('a"b', "int", True, ""), ("c", "text", True, "")]
    info = table(cols, [(True, ('a"b', "c"))])
    order = choose_order("postgres", info)
    sql = page_query("postgres", info, order, Position(("1", "x'); DROP TABLE t; --")), 11)
    assert "WHERE (t.\"a\"\"b\", t.\"c\") > ('1', 'x''); DROP TABLE t; --')" in sql
    assert sql.endswith('ORDER BY t."a""b", t."c" LIMIT 11')
    my_cols = [("n", "int(11)", True, "int"), ("s", "varchar(9)", True, "varchar"),
               ("b", "varbinary(8)", True, "varbinary")]  # fmt: skip
    my = table(my_cols, [(True, ("n", "s", "b"))])
    sql = page_query(
        "mariadb", my, choose_order("mariadb", my), Position(("-5", "it's\\", "00FF")), 3
    )
    assert "(t.`n` > -5) OR (t.`n` = -5 AND t.`s` > 'it''s\\\\')" in sql
    assert "t.`s` = 'it''s\\\\' AND t.`b` > X'00FF'" in sql
    assert "HEX(t.`b`)" in sql and "CAST(t.`n` AS CHAR)" in sql
    for bad in (("1 OR 1=1", "a", "00"), ("1", "a", "0G'; --")):
        with pytest.raises(InvalidInput) as caught:
            page_query("mariadb", my, choose_order("mariadb", my), Position(bad), 3)
        assert caught.value.code == "invalid_cursor"
    wide = table([(f"c{i}", "int", True, "") for i in range(120)], [(True, ("c0",))])
    assert (
        page_query("postgres", wide, choose_order("postgres", wide), Position(), 5).count(
            "jsonb_build_array("
        )
        == 3
    )  # at most 100 arguments a call


def test_a_cursor_is_for_its_database_table_and_key() -> None:
    info = table([("id", "int", True, "")], [(True, ("id",))])
    order = choose_order("postgres", info)
    payload = cursor_payload("db1", info, order, Position(("41",)))
    assert read_cursor(payload, "db1", info, order) == Position(("41",))
    with pytest.raises(InvalidInput):
        read_cursor(payload, "db2", info, order)  # another database's
    other = TableInfo(TableRef("public", "u", 1), "r", info.columns, info.unique_keys)
    with pytest.raises(InvalidInput):
        read_cursor(payload, "db1", other, order)
    with pytest.raises(Conflict) as stale:
        read_cursor(payload, "db1", info, Order(CTID))  # the key was dropped since
    assert stale.value.code == "stale_cursor"
    doc = json.loads(payload)
    for broken in ({**doc, "a": ["1", "2"]}, {**doc, "o": -1}, {"d": "db1"}, "[]"):
        with pytest.raises(InvalidInput):
            read_cursor(json.dumps(broken), "db1", info, order)


def test_the_catalog_is_read_from_either_engine() -> None:
    pg = ('{"schema": "public", "name": "t", "kind": "r", "rows": 3, "columns": '
          '[["id", "integer", true, ""], ["v", "text", false, ""]], "keys": [[true, ["id"]]]}')  # fmt: skip
    (info,) = parse_catalog("postgres", pg + "\n")
    assert info.ref == TableRef("public", "t", 3) and info.unique_keys == ((True, ("id",)),)
    assert [c.primary_key for c in info.shown_columns()] == [True, False]
    # MariaDB gives a subquery's JSON as a string; a unique key's columns one row each.
    my = json.dumps({"schema": "app", "name": "t", "kind": "BASE TABLE", "rows": None,
                     "columns": json.dumps([["a", "int(11)", 1, "int"], ["b", "int(11)", 1, "int"]]),
                     "keys": json.dumps([["u", 1, "a"], ["u", 2, "b"]])})  # fmt: skip
    (info,) = parse_catalog("mariadb", my)
    assert info.unique_keys == ((False, ("a", "b")),) and info.ref.estimated_rows is None
    assert choose_order("mariadb", info) == Order(KEY, ("a", "b"))


def test_rows_are_read_in_one_decode_and_a_cut_last_line_is_dropped() -> None:
    whole = '[1, "a\\tb", null]\n[2, "x", {"k": [1]}]\n[3, "y", true]\n'
    assert parse_json_rows(whole, 5) == (
        [[1, "a\tb", None], [2, "x", {"k": [1]}], [3, "y", True]],
        False,
    )
    assert parse_json_rows(whole, 2) == ([[1, "a\tb", None], [2, "x", {"k": [1]}]], True)
    cut = whole + '[4, "partial'
    assert parse_json_rows(cut, 10) == (
        [[1, "a\tb", None], [2, "x", {"k": [1]}], [3, "y", True]],
        True,
    )
    assert parse_json_rows("SET\n" + whole.splitlines()[0], 10) == ([[1, "a\tb", None]], False)


def test_rows_lose_their_key_columns_and_only_the_last_key_is_kept() -> None:
    table = TableInfo(
        TableRef("public", "t", None), "r",
        (CatalogColumn("id", "bigint", True, ""), CatalogColumn("name", "text", False, "")),
        ((True, ("id",)),),
    )  # fmt: skip
    order = choose_order("postgres", table)
    assert split_rows([[1, "a", "1"], [2, None, "2"]], table, order) == (
        [[1, "a"], [2, None]],
        ("2",),
    )
    assert split_rows([], table, order) == ([], ())
