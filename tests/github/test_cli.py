"""`ipaas repos list|branches` and `ipaas apps create --github` against a live API using the
stand-in GitHub."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from dataclasses import fields
from pathlib import Path

import httpx
import pytest
import typer
from typer.testing import CliRunner, Result

from ipaas.cli.apps import apps_app
from ipaas.cli.repos import repos_app
from ipaas.store.migrate import upgrade
from tests.builds.conftest import GitHttp, git, git_http
from tests.cli.conftest import Live
from tests.conftest import make_settings
from tests.fakes import fake_plane
from tests.github.conftest import new_login, repo_files
from tests.github_standin import StandInGitHub
from tests.live import start_live
from tests.support import free_port
from tests.test_repo_hosts_api import GIT_HTTP_TOKEN, operator_sets

__all__ = ["git_http"]


@pytest.fixture(scope="module")
def live(
    database_url: str, tmp_path_factory: pytest.TempPathFactory, github: StandInGitHub
) -> Iterator[Live]:
    upgrade(database_url)
    data = tmp_path_factory.mktemp("gh-cli")
    settings = make_settings(
        data, database_url, port=free_port(), github=github.settings("app", data / "k.pem")
    )  # the port: GitHub sends the browser back to the API's own URL
    started = start_live(fake_plane(settings), manage_lifecycle=False, port=settings.port)
    live = Live(**{f.name: getattr(started, f.name) for f in fields(started)})
    yield live
    live.stop()


def signed_in_token(live: Live, github: StandInGitHub, login: str) -> str:
    github.browser_user = login
    with httpx.Client(base_url=live.base, timeout=30) as browser:
        start = browser.get("/api/v1/auth/github/login")
        back = httpx.get(start.headers["location"]).headers["location"]
        return str(browser.get(back).json()["access_token"])


def run(token: str, live: Live, tmp_path: Path, *args: str) -> Result:
    root = typer.Typer()
    root.add_typer(apps_app, name="apps")
    root.add_typer(repos_app, name="repos")
    env = {"IPAAS_URL": live.base, "IPAAS_TOKEN": token, "COLUMNS": "200",
           "IPAAS_CLI_CONFIG": str(tmp_path / "cli.json")}  # fmt: skip
    return CliRunner().invoke(root, list(args), env=env)


def test_repos_branches_and_create_from_github(
    live: Live, github: StandInGitHub, tmp_path: Path
) -> None:
    login = new_login()
    github.add_user(login)
    github.add_repo(f"{login}/api", files=repo_files())
    github.add_repo(f"{login}/web", files=repo_files())
    github.push(f"{login}/web", {"x": "1"}, branch="dev")
    github.install_app(login, [f"{login}/web"])
    token = signed_in_token(live, github, login)
    listed = run(token, live, tmp_path, "repos", "list", "-o", "json")
    assert listed.exit_code == 0, listed.output
    assert [r["full_name"] for r in json.loads(listed.stdout)["items"]] == [
        f"{login}/web", f"{login}/api",
    ]  # fmt: skip
    table = run(token, live, tmp_path, "repos", "list", "-q", "api")
    assert f"{login}/api" in table.stdout and f"{login}/web" not in table.stdout
    branches = run(token, live, tmp_path, "repos", "branches", f"{login}/web")
    assert branches.exit_code == 0 and branches.stdout.index("main") < branches.stdout.index("dev")
    name = f"gh-{uuid.uuid4().hex[:6]}"
    created = run(token, live, tmp_path, "apps", "create", name, "--github", f"{login}/web",
                  "--branch", "dev", "--no-wait")  # fmt: skip
    assert created.exit_code == 0, created.output
    shown = json.loads(run(token, live, tmp_path, "apps", "show", name, "-o", "json").stdout)
    assert (shown["repo"], shown["provider"], shown["branch"]) == (f"{login}/web", "github", "dev")
    both = run(
        token,
        live,
        tmp_path,
        "apps",
        "create",
        "x-" + name,
        "--github",
        "a/b",
        "--repo",
        "https://h/r",
    )
    assert both.exit_code == 2


def test_repos_branches_of_a_git_url(
    live: Live, tmp_path: Path, git_http: GitHttp, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A URL goes to the generic provider (as an admin: the test server is on loopback)."""
    admin = live.run(live.plane.stores.users.create(f"a{uuid.uuid4().hex[:8]}", None, "admin"))
    token = live.plane.stores.access_tokens.issue(admin.id, "admin")
    name = f"cli-{uuid.uuid4().hex[:6]}.git"
    git_http.add(name, files={"a.txt": "a"})
    git(git_http.base / name, "branch", "dev")
    url = git_http.url(name, userinfo=f"alice:{GIT_HTTP_TOKEN}@")
    operator_sets(monkeypatch, live.plane, allowed_repo_schemes=["https", "http"])
    shown = run(token, live, tmp_path, "repos", "branches", url)
    assert shown.exit_code == 0, shown.stdout
    assert shown.stdout.index("main (default)") < shown.stdout.index("dev")
    assert GIT_HTTP_TOKEN not in shown.stdout
