"""ipaas db ... against a real API server whose plane runs no database containers: a create
ends `failed` with the reason, and every read, attachment and refusal goes through the API."""

from __future__ import annotations

import json
from typing import Any

from tests.cli.conftest import Cli, unique_name
from tests.cli.test_apps import create as create_app


def as_json(cli: Cli, *args: str) -> Any:
    result = cli(*args, "-o", "json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_db_commands_through_the_api(user_cli: Cli) -> None:
    name = unique_name("db")
    result = user_cli("db", "create", name, "--engine", "postgres", "--memory", "128")
    # This plane has no engine for databases: the create fails, and says why.
    assert result.exit_code == 1 and "failed" in result.stdout, result.output
    (listed,) = as_json(user_cli, "db", "list")
    assert (listed["name"], listed["engine"], listed["version"]) == (name, "postgres", "15")
    assert listed["memory_mb"] == 128 and listed["state"] == "failed"
    info = as_json(user_cli, "db", "info", name)
    assert info["id"] == listed["id"] and info["attachments"] == []
    creds = as_json(user_cli, "db", "credentials", name)
    assert creds["url"].startswith("postgres://") and len(creds["password"]) >= 24
    app_name, _ = create_app(user_cli)
    attached = user_cli("db", "attach", name, app_name)
    assert attached.exit_code == 0 and "DATABASE_URL" in attached.stdout, attached.output
    assert as_json(user_cli, "db", "info", name)["attachments"][0]["app_name"] == app_name
    refused = user_cli("db", "delete", name, "--yes")
    assert refused.exit_code == 1 and "detach it first" in refused.output
    assert user_cli("db", "detach", name, app_name).exit_code == 0
    backup = user_cli("db", "backup", name)
    assert backup.exit_code == 1 and "not possible while the database is failed" in backup.output
    scheduled = user_cli("db", "schedule", name, "--cron", "0 3 * * *", "--keep", "3")
    assert scheduled.exit_code == 0 and "'0 3 * * *' (UTC), 3 kept" in scheduled.stdout
    assert as_json(user_cli, "db", "info", name)["backup_cron"] == "0 3 * * *"
    bad = user_cli("db", "schedule", name, "--cron", "0 3 * *")
    assert bad.exit_code == 1 and "five fields" in bad.output, bad.output
    assert user_cli("db", "schedule", name).exit_code == 2  # neither --cron nor --every
    assert user_cli("db", "delete", name, "--yes").exit_code == 0


def test_db_create_refuses_an_unknown_engine(user_cli: Cli) -> None:
    result = user_cli("db", "create", unique_name("db"), "--engine", "oracle")
    assert result.exit_code == 1 and "unknown engine" in result.output
    assert as_json(user_cli, "db", "list") == []
