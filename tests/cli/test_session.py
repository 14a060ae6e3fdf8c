"""ipaas login / logout / whoami against a real API server."""

from __future__ import annotations

import json
import stat

import httpx

from tests.cli.conftest import PASSWORD, Cli


def test_login_saves_a_working_token_readable_by_the_owner_only(cli: Cli) -> None:
    username, _ = cli.live.make_user()
    result = cli("login", "--url", cli.live.base, "--username", username, input=f"{PASSWORD}\n")
    assert result.exit_code == 0, result.output
    assert PASSWORD not in result.output  # the prompt hides it
    assert stat.S_IMODE(cli.config.stat().st_mode) == 0o600
    assert stat.S_IMODE(cli.config.parent.stat().st_mode) == 0o700
    saved = json.loads(cli.config.read_text())
    assert saved["url"] == cli.live.base and saved["username"] == username
    me = httpx.get(
        f"{cli.live.base}/api/v1/users/me", headers={"Authorization": f"Bearer {saved['token']}"}
    )
    assert me.status_code == 200 and me.json()["username"] == username
    tokens = httpx.get(
        f"{cli.live.base}/api/v1/users/me/tokens",
        headers={"Authorization": f"Bearer {saved['token']}"},
    ).json()
    assert [t["name"].startswith("cli@") for t in tokens] == [True]


def test_login_again_replaces_the_previous_token(user_cli: Cli) -> None:
    first = json.loads(user_cli.config.read_text())["token"]
    again = user_cli(
        "login", "--url", user_cli.live.base, "--username", user_cli.username,
        "--password", PASSWORD,
    )  # fmt: skip
    assert again.exit_code == 0, again.output
    second = json.loads(user_cli.config.read_text())["token"]
    assert second != first
    me = f"{user_cli.live.base}/api/v1/users/me"
    assert httpx.get(me, headers={"Authorization": f"Bearer {first}"}).status_code == 401
    tokens = httpx.get(f"{me}/tokens", headers={"Authorization": f"Bearer {second}"}).json()
    assert len(tokens) == 1


def test_wrong_password_exits_1_with_the_code(cli: Cli) -> None:
    username, _ = cli.live.make_user()
    result = cli("login", "--url", cli.live.base, "--username", username, "--password", "nope nope")
    assert result.exit_code == 1
    assert "(invalid_credentials)" in result.stderr
    assert not cli.config.exists()


def test_whoami_text_and_json(user_cli: Cli) -> None:
    text = user_cli("whoami")
    assert text.exit_code == 0, text.output
    assert user_cli.username in text.stdout
    as_json = user_cli("whoami", "-o", "json")
    assert as_json.exit_code == 0, as_json.output
    me = json.loads(as_json.stdout)
    assert me["username"] == user_cli.username and me["url"] == user_cli.live.base


def test_env_overrides_the_saved_login(user_cli: Cli, tmp_path: object) -> None:
    saved = json.loads(user_cli.config.read_text())
    result = user_cli(
        "whoami",
        "-o",
        "json",
        IPAAS_CLI_CONFIG=str(user_cli.config) + ".absent",
        IPAAS_URL=saved["url"],
        IPAAS_TOKEN=saved["token"],
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["username"] == user_cli.username


def test_not_logged_in_exits_1(cli: Cli) -> None:
    result = cli("whoami")
    assert result.exit_code == 1
    assert "not logged in" in result.stderr


def test_logout_deletes_the_token_and_the_file(user_cli: Cli) -> None:
    token = json.loads(user_cli.config.read_text())["token"]
    result = user_cli("logout")
    assert result.exit_code == 0, result.output
    assert not user_cli.config.exists()
    me = httpx.get(
        f"{user_cli.live.base}/api/v1/users/me", headers={"Authorization": f"Bearer {token}"}
    )
    assert me.status_code == 401
    assert user_cli("whoami").exit_code == 1
