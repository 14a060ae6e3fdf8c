"""`ipaas account ...` and `ipaas admin users ...` against a real API server (on a port of its
own) that mails through a real SMTP server."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner, Result

from ipaas.cli.main import app
from ipaas.store.migrate import upgrade
from tests.conftest import hashed, make_settings
from tests.fakes import fake_plane
from tests.live import Live, start_live
from tests.mailserver import MailServer
from tests.notify.conftest import FAST
from tests.support import wait_until

PASSWORD = "correct horse battery"
TOKEN = re.compile(r"\?token=(\S+)")


@pytest.fixture(scope="module")
def live(
    module_database_url: str, tmp_path_factory: pytest.TempPathFactory, mail_server: MailServer
) -> Iterator[Live]:
    upgrade(module_database_url)
    settings = make_settings(
        tmp_path_factory.mktemp("cli"),
        module_database_url,
        router={"kind": "transparent"},
        smtp={"host": "127.0.0.1", "port": mail_server.port, "mode": "plain"},
        notify=FAST,
    )
    started = start_live(fake_plane(settings))
    yield started
    started.stop()


@dataclass
class Cli:
    live: Live
    config: Path
    username: str = ""

    def __call__(self, *args: str) -> Result:
        env = {
            "IPAAS_CLI_CONFIG": str(self.config),
            "IPAAS_URL": None,
            "IPAAS_TOKEN": None,
            "COLUMNS": "200",
        }
        return CliRunner().invoke(app, list(args), env=env)

    def ok(self, *args: str) -> str:
        result = self(*args)
        assert result.exit_code == 0, result.output
        return result.output

    def login(self, role: str = "user", password: str = PASSWORD) -> Cli:
        self.username = f"c{uuid.uuid4().hex[:10]}"
        self.live.run(self.live.plane.stores.users.create(self.username, hashed(password), role))
        self.ok("login", "--url", self.live.base, "-u", self.username, "--password", password)
        return self


@pytest.fixture
def cli(live: Live, tmp_path: Path) -> Iterator[Cli]:
    yield Cli(live, tmp_path / f"{uuid.uuid4().hex}.json")


def mailed_token(live: Live, server: MailServer, address: str) -> str:
    """The token of the next link mailed to `address` (a reset link is made just after the
    API has answered)."""
    seen = len(server.to(address))

    def link() -> str | None:
        live.run(live.plane.notice_sender.run_once())
        found = [TOKEN.search(m.part("plain")) for m in server.to(address)[seen:]]
        return next((f.group(1) for f in found if f), None)

    return wait_until(link, 5, f"a link mailed to {address}", every_s=0.05)


def test_email_verification_and_password_reset(
    cli: Cli, live: Live, mail_server: MailServer, tmp_path: Path
) -> None:
    cli.login()
    address = f"{cli.username}@example.test"
    cli.ok("account", "email", address)
    assert "not confirmed" in cli.ok("account", "show")
    cli.ok("account", "verify", mailed_token(live, mail_server, address), "--url", live.base)
    assert f"{address} (confirmed)" in cli.ok("account", "show")
    assert "delivered: 250" in cli.ok("account", "test-mail")

    stranger = Cli(live, tmp_path / "stranger.json")  # not logged in
    assert "on its way" in stranger.ok("account", "reset-password", address, "--url", live.base)
    token = mailed_token(live, mail_server, address)
    stranger.ok(
        "account",
        "reset-password",
        "--token",
        token,
        "--new",
        "a brand new one",
        "--url",
        live.base,
    )
    assert (
        stranger(
            "account",
            "reset-password",
            "--token",
            token,
            "--new",
            "again again",
            "--url",
            live.base,
        ).exit_code
        == 1
    )
    stranger.ok("login", "--url", live.base, "-u", cli.username, "--password", "a brand new one")


def test_password_change_keeps_this_login(cli: Cli) -> None:
    cli.login()
    assert cli("account", "password", "--current", "wrong", "--new", "whatever123").exit_code == 1
    cli.ok("account", "password", "--current", PASSWORD, "--new", "changed password")
    assert cli.username in cli.ok("whoami")


def test_notice_preferences(cli: Cli) -> None:
    cli.login()
    out = cli.ok("account", "notices", "--on", "deploy_succeeded", "--off", "build_failed")
    assert re.search(r"deploy_succeeded\s+on", out) and re.search(r"build_failed\s+off", out)
    assert cli("account", "notices", "--on", "no_such_kind").exit_code == 1


def test_admin_users(live: Live, tmp_path: Path) -> None:
    admin = Cli(live, tmp_path / "admin.json").login("admin")
    user = Cli(live, tmp_path / "user.json").login()
    assert user.username in admin.ok("admin", "users", "list")
    assert user("admin", "users", "list").exit_code == 1  # 403 for a normal user
    admin.ok("admin", "users", "disable", user.username)
    assert user("whoami").exit_code == 1
    admin.ok("admin", "users", "enable", user.username)
    admin.ok("admin", "users", "role", user.username, "admin")
    assert re.search(rf"{user.username}\s+admin\s+active", admin.ok("admin", "users", "list"))
    invited = f"i{uuid.uuid4().hex[:8]}"
    assert "invited by e-mail" in admin.ok(
        "admin", "users", "create", invited, "--email", f"{invited}@example.test"
    )


def test_admin_sets_a_quota_and_deletes_a_user(live: Live, tmp_path: Path) -> None:
    admin = Cli(live, tmp_path / "admin.json").login("admin")
    user = Cli(live, tmp_path / "user.json").login()
    admin.ok("admin", "users", "quota", user.username, "--apps", "3", "--cpus", "1.5")
    shown = json.loads(admin.ok("admin", "users", "quota", user.username, "-o", "json"))
    assert shown["limits"]["apps"] == 3 and shown["limits"]["cpus"] == 1.5
    assert shown["overrides"]["apps"] == 3 and shown["overrides"]["volumes"] is None
    refused = admin("admin", "users", "delete", user.username, "--confirm", "not-them")
    assert refused.exit_code == 1 and "type the user's name" in refused.output
    assert "deleted, with 0 app(s)" in admin.ok(
        "admin", "users", "delete", user.username, "--confirm", user.username
    )
    assert user("whoami").exit_code == 1
    assert user.username not in admin.ok("admin", "users", "list")


def test_api_tokens_from_the_terminal(cli: Cli) -> None:
    cli.login()
    token = cli.ok("account", "tokens", "create", "deploy-bot", "--days", "7").strip()
    listed = json.loads(cli.ok("account", "tokens", "list", "-o", "json"))
    [bot] = [t for t in listed if t["name"] == "deploy-bot"]
    assert token.startswith(bot["prefix"]) and bot["expires_at"]
    me = httpx.get(f"{cli.live.base}/api/v1/users/me", headers={"Authorization": f"Bearer {token}"})
    assert me.status_code == 200
    cli.ok("account", "tokens", "delete", bot["id"])
    gone = httpx.get(
        f"{cli.live.base}/api/v1/users/me", headers={"Authorization": f"Bearer {token}"}
    )
    assert gone.status_code == 401
