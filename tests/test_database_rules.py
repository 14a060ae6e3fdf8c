"""The pure part of database users, backup schedules and the viewer: what rotation stores and
revokes, which scheduled backups are pruned, and reading the
engines' output (caps, NULLs, quoting)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from ipaas.databases.backups import prune_plan
from ipaas.domain.databases import Credentials
from ipaas.domain.dbaccounts import Accounts, revoke_input
from ipaas.domain.dbviewer import parse_csv_result, parse_xml_result, quote_ident, quote_literal
from ipaas.store.models import DatabaseBackup

NOW = datetime(2026, 12, 1, 12, tzinfo=UTC)


def test_rotation_keeps_the_owner_and_retires_each_login_once() -> None:
    first = Accounts(Credentials("u1", "p1", "shop"), "u1")
    legacy = Accounts.from_json('{"username": "u1", "password": "p1", "database": "shop"}')
    assert legacy == first  # databases made before rotation: the login is the owner
    second = first.rotated(Credentials("u2", "p2", "shop"))
    third = second.rotated(Credentials("u3", "p3", "shop"))  # u1 was never revoked
    assert (third.app.username, third.owner, third.retiring) == ("u3", "u1", ("u1", "u2"))
    assert Accounts.from_json(third.to_json()) == third
    sql = revoke_input("postgres", third)
    assert 'ALTER ROLE "u1" NOLOGIN PASSWORD NULL' in sql  # the owner stays, without a login
    assert 'REASSIGN OWNED BY "u2" TO "u1"' in sql and 'DROP ROLE "u2"' in sql
    assert revoke_input("redis", second) == "ACL DELUSER u1\nACL SAVE\n"
    assert third.revoked().retiring == ()


def backup(n: int, status: str = "succeeded", reason: str = "scheduled") -> DatabaseBackup:
    return DatabaseBackup(
        id=f"b{n}", status=status, reason=reason, created_at=NOW - timedelta(hours=n)
    )


def test_pruning_keeps_the_newest_good_scheduled_backups_and_what_users_took() -> None:
    items = [backup(1), backup(2, "failed"), backup(3), backup(4), backup(5, "failed"),
             backup(6, reason="manual"), backup(7, reason="final"), backup(0, "running")]  # fmt: skip
    assert sorted(b.id for b in prune_plan(items, 2)) == ["b4", "b5"]
    assert prune_plan(items, 3) == []


def test_console_output_keeps_nulls_apart_and_drops_a_row_cut_by_the_byte_cap() -> None:
    csv_text = 'a,b\n1,NUL\n2,""\n3,"x\ny"\n4,"cut he'
    result = parse_csv_result(csv_text, "NUL", limit=10, cut=True)
    assert result.rows == [["1", None], ["2", ""], ["3", "x\ny"]] and result.truncated
    capped = parse_csv_result("a\n1\n2\n3\n", "NUL", limit=2, cut=False)
    assert capped.rows == [["1"], ["2"]] and capped.truncated
    xml = (
        '<?xml version="1.0"?>\n<resultset statement="s" '
        'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">\n'
        '<row><field name="a">1</field><field name="b" xsi:nil="true" /></row>\n'
        '<row><field name="a">&lt;2&gt;</field><field name="b">NULL</field></row>\n<row><fi'
    )
    result = parse_xml_result(xml, limit=10)
    assert [c.name for c in result.columns] == ["a", "b"]
    assert result.rows == [["1", None], ["<2>", "NULL"]] and result.truncated


def test_names_are_quoted_whatever_they_hold() -> None:
    assert quote_ident("postgres", 'a"; DROP TABLE t; --') == '"a""; DROP TABLE t; --"'
    assert quote_ident("mariadb", "a`; DROP TABLE t") == "`a``; DROP TABLE t`"
    assert quote_literal("mariadb", "it's \\") == "'it''s \\\\'"
    assert quote_literal("postgres", "it's \\") == "'it''s \\'"
