"""Sign in with (stand-in) GitHub: the OAuth web flow, CSRF-safe state, linking to a local
account, organisation limits."""

from __future__ import annotations

import httpx

from ipaas.platform import ControlPlane
from tests.conftest import auth, signed_in_user
from tests.github.conftest import approve, callback_query, new_login, sign_in
from tests.github_standin import StandInGitHub


async def test_first_sign_in_makes_an_account_and_the_second_finds_it(
    client: httpx.AsyncClient, github: StandInGitHub, plane: ControlPlane
) -> None:
    login = new_login()
    github.add_user(login)
    first = await sign_in(client, github, login)
    again = await sign_in(client, github, login)
    assert first.user_id == again.user_id
    user = await plane.stores.users.get(first.user_id)
    assert user is not None and user.username == login and user.password_hash is None
    identity = await plane.stores.identities.of_user(first.user_id, "github")
    assert identity is not None and identity.login == login
    assert identity.token_encrypted and "gho_" not in identity.token_encrypted  # encrypted


async def test_a_signed_in_user_links_github_to_their_account(
    client: httpx.AsyncClient, github: StandInGitHub, plane: ControlPlane
) -> None:
    local = await signed_in_user(plane)
    login = new_login()
    github.add_user(login)
    github.browser_user = login
    start = await client.get("/api/v1/auth/github/login?format=json", headers=auth(local))
    query = callback_query(await approve(start.json()["authorize_url"]))
    done = await client.get("/api/v1/auth/github/callback", params=query)
    assert done.status_code == 200, done.text
    later = await sign_in(client, github, login)  # signing in with GitHub now: that account
    assert later.user_id == local["id"]


async def test_a_callback_from_another_browser_is_refused(
    client: httpx.AsyncClient, github: StandInGitHub
) -> None:
    """Login CSRF: an attacker's own code and state, sent to a victim's browser, fail there
    (the victim has no cookie of that flow); a state that was tampered with fails too."""
    attacker = new_login()
    github.add_user(attacker)
    github.browser_user = attacker
    start = await client.get("/api/v1/auth/github/login")
    query = callback_query(await approve(start.headers["location"]))
    transport = client._transport  # the same API, a browser without the attacker's cookie
    async with httpx.AsyncClient(transport=transport, base_url=str(client.base_url)) as victim:
        refused = await victim.get("/api/v1/auth/github/callback", params=query)
    assert refused.status_code == 422 and refused.json()["code"] == "bad_state"
    forged = {**query, "state": query["state"][:-2] + "xx"}
    r = await client.get("/api/v1/auth/github/callback", params=forged)
    assert r.status_code == 422 and r.json()["code"] == "bad_state"
    ok = await client.get("/api/v1/auth/github/callback", params=query)
    assert ok.status_code == 200
    replay = await client.get("/api/v1/auth/github/callback", params=query)
    assert replay.status_code == 422  # the state (and GitHub's code) are single use


async def test_sign_in_can_be_limited_to_organisations(
    client: httpx.AsyncClient, github: StandInGitHub, plane: ControlPlane
) -> None:
    outsider, member = new_login(), new_login()
    github.add_user(outsider, orgs=["elsewhere"])
    github.add_user(member, orgs=["Acme"])
    plane.settings.github.allowed_orgs = ["acme"]
    try:
        github.browser_user = outsider
        start = await client.get("/api/v1/auth/github/login")
        query = callback_query(await approve(start.headers["location"]))
        refused = await client.get("/api/v1/auth/github/callback", params=query)
        assert refused.status_code == 403 and refused.json()["code"] == "org_not_allowed"
        assert await plane.stores.users.by_username(outsider) is None  # no account was made
        assert (await sign_in(client, github, member)).login == member
    finally:
        plane.settings.github.allowed_orgs = []
