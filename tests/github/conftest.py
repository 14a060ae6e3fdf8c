"""A stand-in GitHub (tests/github_standin.py) and an API process configured to use it."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from ipaas.api.app import create_app
from ipaas.platform import ControlPlane
from ipaas.store.migrate import upgrade
from tests.conftest import make_settings
from tests.fakes import fake_plane
from tests.github_standin import StandInGitHub, standin_github


@pytest.fixture(scope="module")
def github(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StandInGitHub]:
    with standin_github(tmp_path_factory.mktemp("github")) as hub:
        yield hub


@pytest.fixture(scope="module")
async def plane(
    module_database_url: str, tmp_path_factory: pytest.TempPathFactory, github: StandInGitHub
) -> AsyncIterator[ControlPlane]:
    """An API process in GitHub App mode against the stand-in (no loops run: builds stay
    queued; tests that clone call the builder's source themselves)."""
    upgrade(module_database_url)
    data = tmp_path_factory.mktemp("data")
    settings = make_settings(
        data, module_database_url, router={"kind": "transparent"},
        github=github.settings("app", data / "app-key.pem"),
    )  # fmt: skip
    plane = fake_plane(settings)
    yield plane
    await plane.lifecycle.close()


@pytest.fixture(scope="module")
async def client(plane: ControlPlane) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=create_app(plane, manage_lifecycle=False))
    async with httpx.AsyncClient(transport=transport, base_url=plane.settings.api_url) as c:
        yield c


@dataclass
class GitHubUser:
    login: str
    headers: dict[str, str]  # the ipaas session the sign-in gave
    user_id: str


async def sign_in(client: httpx.AsyncClient, github: StandInGitHub, login: str) -> GitHubUser:
    """The OAuth web flow as a browser goes through it: ipaas → GitHub → ipaas's callback."""
    github.browser_user = login
    start = await client.get("/api/v1/auth/github/login")
    assert start.status_code == 302, start.text
    back = urlsplit(await approve(start.headers["location"]))
    done = await client.get(f"{back.path}?{back.query}")
    assert done.status_code == 200, done.text
    headers = {"Authorization": f"Bearer {done.json()['access_token']}"}
    me = await client.get("/api/v1/users/me", headers=headers)
    return GitHubUser(login, headers, me.json()["id"])


async def approve(authorize_url: str) -> str:
    """The browser at GitHub's authorize page: where GitHub sends it back (the stand-in
    approves at once for its signed-in user)."""
    async with httpx.AsyncClient() as browser:
        approved = await browser.get(authorize_url)
    assert approved.status_code == 302, approved.text
    return approved.headers["location"]


def callback_query(location: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}


def new_login(prefix: str = "gh") -> str:
    return f"{prefix}{uuid.uuid4().hex[:8]}"


def repo_files(text: str = "v1") -> dict[str, Any]:
    return {"Dockerfile": "FROM busybox:stable\n", "version.txt": text}


__all__ = ["Path", "approve", "callback_query", "new_login", "repo_files", "sign_in"]
