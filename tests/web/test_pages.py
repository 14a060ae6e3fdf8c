"""The dashboard without JavaScript: every page and form over plain HTTP, on the session's
plane (real store, in-memory runtime). Sign-in and sessions, CSRF, escaping, other users' ids,
the apps list, new app, the app's tabs and their forms, the account page."""

from __future__ import annotations

import html
import re

import pytest

from ipaas.domain.states import State
from ipaas.platform import ControlPlane
from tests.factories import running_app, stored_app, stored_releases
from tests.support import wait_until_async
from tests.web.browser import csrf_of, field_error
from tests.web.conftest import BrowserMaker

HOSTILE = '<script>alert("x")</script><img src=x onerror=alert(1)>'


# --- signing in and out ----------------------------------------------------------------------
async def test_pages_send_a_stranger_to_sign_in_and_back(new_browser: BrowserMaker) -> None:
    browser, _ = await new_browser(signed_in=False)
    r = await browser.get("/apps/abc/settings")
    assert r.status_code == 303
    assert r.headers["location"] == "/login?next=/apps/abc/settings"
    r = await browser.get("/apps/abc/status", headers={"HX-Request": "true"})
    assert r.status_code == 401 and r.headers["hx-redirect"].startswith("/login")


async def test_sign_in_sets_a_strict_session_cookie_and_sign_out_ends_it(
    new_browser: BrowserMaker,
) -> None:
    browser, user = await new_browser(signed_in=False)
    r = await browser.submit(
        "/login?next=/account",
        "/login",
        {"username": user["username"], "password": user["password"], "next": "/account"},
    )
    assert r.status_code == 303 and r.headers["location"] == "/account"
    cookie = next(c for c in r.headers.get_list("set-cookie") if c.startswith("ipaas_session="))
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie and "Secure" not in cookie
    page = await browser.get("/account")
    assert page.status_code == 200 and user["username"] in page.text
    session = browser.client.cookies["ipaas_session"]

    r = await browser.post("/logout", {"csrf_token": csrf_of(page.text)})
    assert r.status_code == 303 and r.headers["location"] == "/login"
    # The old cookie, replayed, opens nothing: the session ended on the server.
    browser.client.cookies.set("ipaas_session", session, domain="ipaas.test")
    assert (await browser.get("/account")).status_code == 303


async def test_a_wrong_password_shows_the_form_again_with_the_reason(
    new_browser: BrowserMaker,
) -> None:
    browser, user = await new_browser(signed_in=False)
    fields = {"username": user["username"], "password": "not it", "next": "/apps"}
    r = await browser.submit("/login", "/login", fields)
    assert r.status_code == 401
    assert "Wrong user name or password." in r.text
    assert f'value="{user["username"]}"' in r.text
    assert "ipaas_session" not in browser.client.cookies


async def test_the_session_cookie_is_secure_over_https(new_browser: BrowserMaker) -> None:
    browser, user = await new_browser(signed_in=False)
    page = await browser.get("https://ipaas.test/login")
    fields = {"username": user["username"], "password": user["password"], "next": "/apps"}
    r = await browser.client.post(
        "https://ipaas.test/login", data={"csrf_token": csrf_of(page.text), **fields}
    )
    assert r.status_code == 303
    assert all("Secure" in c for c in r.headers.get_list("set-cookie"))


@pytest.mark.parametrize("token", [None, "0" * 64, "wrong"])
async def test_a_post_without_the_right_csrf_token_is_refused(
    new_browser: BrowserMaker, core: ControlPlane, token: str | None
) -> None:
    browser, user = await new_browser()
    app = await stored_app(core.stores, user["id"])
    await browser.get("/apps")  # the browser has its id cookie: only the token is missing
    fields = {"confirm": app.name} | ({"csrf_token": token} if token else {})
    r = await browser.post(f"/apps/{app.id}/delete", fields)
    assert r.status_code == 403 and "Form refused" in r.text
    assert (await core.stores.apps.get(app.id)).state == State.PENDING


async def test_a_csrf_token_of_another_browser_is_refused(
    new_browser: BrowserMaker, core: ControlPlane
) -> None:
    victim, user = await new_browser()
    attacker, _ = await new_browser()
    app = await stored_app(core.stores, user["id"])
    token = csrf_of((await attacker.get("/apps")).text)  # valid, but for the attacker's browser
    await victim.get("/apps")
    r = await victim.post(f"/apps/{app.id}/delete", {"csrf_token": token, "confirm": app.name})
    assert r.status_code == 403
    assert (await core.stores.apps.get(app.id)).state == State.PENDING


async def test_pages_carry_a_policy_without_inline_scripts(new_browser: BrowserMaker) -> None:
    browser, _ = await new_browser()
    r = await browser.get("/apps")
    policy = r.headers["content-security-policy"]
    assert "script-src 'self';" in policy and "unsafe-inline" not in policy
    assert "frame-ancestors 'none'" in policy
    assert "<script>" not in r.text and " on" not in re.sub(r"<[^>]*>", "", "")
    assert not re.search(r"<script(?![^>]*\bsrc=)", r.text)  # every script is a file


# --- the apps list ------------------------------------------------------------------------------
async def test_the_apps_list_shows_my_apps_only_with_state_url_and_last_deploy(
    new_browser: BrowserMaker, core: ControlPlane
) -> None:
    browser, user = await new_browser()
    _, other = await new_browser()
    mine = await running_app(core, user["id"])
    pending = await stored_app(core.stores, user["id"])
    theirs = await stored_app(core.stores, other["id"])
    r = await browser.get("/apps")
    assert r.status_code == 200
    assert mine.name in r.text and pending.name in r.text and theirs.name not in r.text
    row = re.search(rf'<tr data-app="{mine.name}">.*?</tr>', r.text, re.S)
    assert row and "running" in row.group(0) and mine.url and mine.url in row.group(0)
    assert "just now" in row.group(0) or "s ago" in row.group(0)


async def test_searching_narrows_the_list_and_htmx_gets_only_the_table(
    new_browser: BrowserMaker, core: ControlPlane
) -> None:
    browser, user = await new_browser()
    one = await stored_app(core.stores, user["id"])
    two = await stored_app(core.stores, user["id"])
    r = await browser.get(f"/apps?q={one.name}")
    assert one.name in r.text and two.name not in r.text
    fragment = await browser.get(f"/apps?q={one.name}", headers={"HX-Request": "true"})
    assert fragment.text.lstrip().startswith('<div id="apps"') and "<html" not in fragment.text
    assert "No app matches" in (await browser.get("/apps?q=zzz-nothing")).text


# --- new app ------------------------------------------------------------------------------------
async def test_creating_an_app_from_the_form(new_browser: BrowserMaker, core: ControlPlane) -> None:
    browser, user = await new_browser()
    name = f"web-{user['id'][:8]}"
    fields = {
        "name": name,
        "repo": "https://x.invalid/r.git",
        "memory_mb": "256",
        "envs": "GREETING=hi\nAPI_TOKEN=s3cret\n",
        "visibility": "private",
    }
    r = await browser.submit("/new", "/new", fields)
    assert r.status_code == 303, r.text
    app_id = r.headers["location"].rsplit("/", 1)[1]
    app = await core.stores.apps.get(app_id)
    assert (app.name, app.owner_id, app.visibility) == (name, user["id"], "private")
    assert app.resources == {"memory_mb": 256}
    envs = {e["key"]: e for e in core.app_service.shown_envs(app, reveal=True)}
    assert envs["GREETING"]["value"] == "hi" and envs["API_TOKEN"]["secret"] is True


@pytest.mark.parametrize(
    ("fields", "field", "message"),
    [
        ({"name": "Bad_Name"}, "name", "String should match pattern"),
        ({"name": "admin"}, "name", "the name 'admin' is reserved"),
        ({"repo": "ftp://example.com/r.git"}, "repo", "the repository URL is not valid"),
        ({"memory_mb": "1"}, "memory_mb", "greater than or equal to 32"),
        ({"envs": "1BAD=x"}, "envs", "String should match pattern"),
    ],
)
async def test_bad_input_shows_the_apis_error_next_to_the_field(
    new_browser: BrowserMaker,
    core: ControlPlane,
    fields: dict[str, str],
    field: str,
    message: str,
) -> None:
    browser, user = await new_browser()
    request = {"name": f"ok-{user['id'][:8]}", "repo": "https://x.invalid/r.git", **fields}
    r = await browser.submit("/new", "/new", request)
    assert r.status_code == 422
    assert message in field_error(r.text, field)
    assert f'value="{html.escape(request["name"])}"' in r.text  # what was typed stays
    assert (await core.app_service.list_apps(_who(user), None, None, 10, 0))[1] == 0


async def test_a_taken_name_is_refused_and_nothing_is_created(
    new_browser: BrowserMaker, core: ControlPlane
) -> None:
    browser, user = await new_browser()
    _, other = await new_browser()
    theirs = await stored_app(core.stores, other["id"])
    r = await browser.submit("/new", "/new", {"name": theirs.name, "repo": "https://x.invalid/r"})
    assert r.status_code == 422 and f"the name {theirs.name!r} is taken" in html.unescape(r.text)


async def test_the_name_check_answers_as_you_type(
    new_browser: BrowserMaker, core: ControlPlane
) -> None:
    browser, user = await new_browser()
    taken = await stored_app(core.stores, user["id"])
    answers = {
        "fresh-name-42": "fresh-name-42 is available",
        taken.name: "the name is taken",
        "www": "this name is reserved",
        "-x": "lowercase letters",
    }
    for name, expected in answers.items():
        r = await browser.get("/new/name-check", params={"name": name})
        assert expected in r.text, (name, r.text)


# --- the app's tabs -----------------------------------------------------------------------------
async def test_every_tab_of_my_app_renders(new_browser: BrowserMaker, core: ControlPlane) -> None:
    browser, user = await new_browser()
    app = await running_app(core, user["id"], releases=2)
    for tab in ("", "/deploy", "/activity", "/logs", "/logs?since=1h&stream=stderr", "/settings"):
        r = await browser.get(f"/apps/{app.id}{tab}")
        assert r.status_code == 200, (tab, r.text)
        assert app.name in r.text and 'data-state="running"' in r.text
    overview = (await browser.get(f"/apps/{app.id}")).text
    assert "v1" in overview and (app.url or "") in overview


async def test_another_users_app_answers_404_everywhere(
    new_browser: BrowserMaker, core: ControlPlane
) -> None:
    browser, _ = await new_browser()
    _, other = await new_browser()
    app = await running_app(core, other["id"])
    for path in ("", "/deploy", "/activity", "/logs", "/settings", "/status", "/logs/stream"):
        r = await browser.get(f"/apps/{app.id}{path}")
        assert r.status_code == 404, path
        assert app.name not in r.text
    token = csrf_of((await browser.get("/apps")).text)
    for action in ("restart", "stop", "delete", "envs", "rename", "rollback"):
        fields = {"csrf_token": token, "confirm": app.name, "key": "A", "name": "stolen-name"}
        assert (await browser.post(f"/apps/{app.id}/{action}", fields)).status_code == 404
    after = await core.stores.apps.get(app.id)
    assert (after.state, after.name, after.envs_encrypted) == ("running", app.name, "")


async def test_html_in_data_is_shown_as_text(new_browser: BrowserMaker, core: ControlPlane) -> None:
    browser, user = await new_browser()
    app = await stored_app(core.stores, user["id"])
    r = await browser.submit(
        f"/apps/{app.id}/settings", f"/apps/{app.id}/envs", {"key": "NOTE", "value": HOSTILE}
    )
    assert r.status_code == 303
    await core.stores.apps.transition(app.id, State.BUILDING, "test")
    await core.stores.apps.transition(app.id, State.FAILED, HOSTILE)
    build = await core.stores.builds.new_build(app.id)
    await core.stores.builds.append_log(build.id, 0, [(1, HOSTILE)])
    # The build log, the env value and the event's reason: each shown, as text.
    for tab in ("/deploy", "/settings", "/activity"):
        page = (await browser.get(f"/apps/{app.id}{tab}")).text
        assert HOSTILE not in page and "<script>alert" not in page, tab
        assert HOSTILE in html.unescape(page), tab  # there, escaped
    assert "<script>alert" not in (await browser.get(f"/apps/{app.id}")).text


async def test_rollback_from_the_activity_tab(
    new_browser: BrowserMaker, core: ControlPlane
) -> None:
    browser, user = await new_browser()
    app = await running_app(core, user["id"], releases=1)
    await stored_releases(core.stores, app.id, 2)
    page = await browser.get(f"/apps/{app.id}/activity")
    assert "Roll back to v2" in page.text and "Roll back to v1" not in page.text
    r = await browser.post(
        f"/apps/{app.id}/rollback", {"csrf_token": csrf_of(page.text), "release": "2"}
    )
    assert r.status_code == 303 and r.headers["location"].endswith("/activity?done=rollback")

    async def rolled_back() -> bool:
        return (await core.stores.apps.get(app.id)).current_release == 2

    await wait_until_async(rolled_back, 10, "the rollback to v2")
    missing = await browser.post(
        f"/apps/{app.id}/rollback", {"csrf_token": csrf_of(page.text), "release": "99"}
    )
    assert missing.status_code == 404


async def test_restart_and_stop_buttons(new_browser: BrowserMaker, core: ControlPlane) -> None:
    browser, user = await new_browser()
    app = await running_app(core, user["id"])
    r = await browser.submit(f"/apps/{app.id}", f"/apps/{app.id}/stop", {})
    assert r.status_code == 303 and r.headers["location"].endswith("?done=stopped")
    assert (await core.stores.apps.get(app.id)).state == State.STOPPED
    page = await browser.get(r.headers["location"])
    assert "Stop requested." in page.text and f"/apps/{app.id}/start" in page.text
    again = await browser.post(f"/apps/{app.id}/stop", {"csrf_token": csrf_of(page.text)})
    assert (
        again.status_code == 409 and "not possible while the application is stopped" in again.text
    )


# --- settings -----------------------------------------------------------------------------------
async def test_the_env_editor_masks_secrets_and_keeps_them_when_left_empty(
    new_browser: BrowserMaker, core: ControlPlane
) -> None:
    browser, user = await new_browser()
    app = await running_app(core, user["id"])
    settings = f"/apps/{app.id}/settings"
    envs = f"/apps/{app.id}/envs"
    await browser.submit(settings, envs, {"key": "DB_PASSWORD", "value": "hunter2-very-secret"})
    await browser.submit(settings, envs, {"key": "GREETING", "value": "hello"})
    page = (await browser.get(settings)).text
    assert "hunter2-very-secret" not in page
    assert 'value="hello"' in page and 'data-env="DB_PASSWORD"' in page
    # Saving the secret's row with its field left empty keeps the value; a new one replaces it.
    r = await browser.submit(settings, envs, {"key": "DB_PASSWORD", "value": "", "secret": "1"})
    assert r.status_code == 303

    async def shown() -> dict[str, str]:
        now = await core.stores.apps.get(app.id)
        return {e["key"]: e["value"] for e in core.app_service.shown_envs(now, reveal=True)}

    assert (await shown())["DB_PASSWORD"] == "hunter2-very-secret"
    await browser.submit(settings, envs, {"key": "GREETING", "value": "hi"})
    await browser.submit(settings, f"{envs}/remove", {"key": "DB_PASSWORD"})
    assert await shown() == {"GREETING": "hi"}
    bad = await browser.submit(settings, envs, {"key": "not valid!", "value": "x"})
    assert bad.status_code == 422 and 'id="error-key"' in bad.text


async def test_settings_rename_and_their_errors(
    new_browser: BrowserMaker, core: ControlPlane
) -> None:
    browser, user = await new_browser()
    app = await running_app(core, user["id"])
    page = f"/apps/{app.id}/settings"
    fields = {"memory_mb": "300", "health_check": "/health", "visibility": "private"}
    r = await browser.submit(page, page, fields)
    assert r.status_code == 303, r.text
    changed = await core.stores.apps.get(app.id)
    assert (changed.resources, changed.health_check) == ({"memory_mb": 300}, "/health")
    assert changed.visibility == "private"
    bad = await browser.submit(page, page, {"cpus": "100", "health_check": "tcp"})
    assert bad.status_code == 422 and 'id="error-cpus"' in bad.text

    new_name = f"renamed-{user['id'][:8]}"
    r = await browser.submit(page, f"/apps/{app.id}/rename", {"name": new_name})
    assert r.status_code == 303
    assert (await core.stores.apps.get(app.id)).name == new_name
    bad = await browser.submit(page, f"/apps/{app.id}/rename", {"name": "api"})
    assert bad.status_code == 422 and "is reserved" in html.unescape(bad.text)


async def test_delete_needs_the_name_typed(new_browser: BrowserMaker, core: ControlPlane) -> None:
    browser, user = await new_browser()
    app = await running_app(core, user["id"])
    page = f"/apps/{app.id}/settings"
    r = await browser.submit(page, f"/apps/{app.id}/delete", {"confirm": "something-else"})
    assert r.status_code == 422 and f"type {app.name} to confirm" in r.text
    assert (await core.stores.apps.get(app.id)).state == State.RUNNING
    r = await browser.submit(page, f"/apps/{app.id}/delete", {"confirm": app.name})
    assert r.status_code == 303 and r.headers["location"] == "/apps?deleted=1"
    listing = await browser.get(r.headers["location"])
    assert "App deleted." in listing.text and app.name not in listing.text


async def test_a_build_log_streams_to_the_dashboard(
    new_browser: BrowserMaker, core: ControlPlane
) -> None:
    browser, user = await new_browser()
    app = await stored_app(core.stores, user["id"])
    build = await core.stores.builds.new_build(app.id)
    await core.stores.builds.append_log(build.id, 0, [(1, "step 1/3"), (2, "step 2/3")])
    await core.stores.builds.finish(build.id, "failed", error="boom", error_code="x")
    r = await browser.get(f"/apps/{app.id}/builds/{build.number}/log/stream")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
    assert r.text.count("data: ") == 2 and "step 2/3" in r.text


# --- account ------------------------------------------------------------------------------------
async def test_api_tokens_from_the_account_page(
    new_browser: BrowserMaker, core: ControlPlane
) -> None:
    browser, user = await new_browser()
    r = await browser.submit("/account", "/account/tokens", {"name": "laptop", "days": "30"})
    assert r.status_code == 201
    token = re.search(r'<code class="token">(ipaas_pat_[^<]+)</code>', r.text)
    assert token, r.text
    owner = await core.stores.users.api_token_owner(_hash(token.group(1)))
    assert owner is not None and owner[0].id == user["id"]
    page = await browser.get("/account")
    assert token.group(1) not in page.text and "laptop" in page.text  # shown once
    token_id = owner[1].id
    r = await browser.submit("/account", f"/account/tokens/{token_id}/delete", {})
    assert r.status_code == 303
    assert await core.stores.users.api_token_owner(_hash(token.group(1))) is None
    bad = await browser.submit("/account", "/account/tokens", {"name": "", "days": "0"})
    assert bad.status_code == 422 and 'id="error-days"' in bad.text


async def test_a_wrong_current_password_changes_nothing(new_browser: BrowserMaker) -> None:
    browser, _ = await new_browser()
    fields = {"current": "not my password", "new": "a new long password"}
    r = await browser.submit("/account", "/account/password", fields)
    assert r.status_code == 422 and 'id="error-current"' in r.text
    assert (await browser.get("/account")).status_code == 200  # still signed in


def _hash(token: str) -> str:
    from ipaas.auth.tokens import hash_token

    return hash_token(token)


def _who(user: dict[str, str]):  # type: ignore[no-untyped-def]
    from ipaas.apps.service import Principal

    return Principal(user["id"], "user")


async def test_polling_a_deleted_apps_status_stops_without_an_error(
    new_browser: BrowserMaker, core: ControlPlane
) -> None:
    browser, user = await new_browser()
    app = await running_app(core, user["id"])
    await core.app_service.delete(app, volumes=False)

    async def gone() -> bool:
        r = await browser.get(f"/apps/{app.id}/status", headers={"HX-Request": "true"})
        return r.status_code == 286 and 'data-state="gone"' in r.text

    await wait_until_async(gone, 10, "the status fragment to say gone")
    assert (await browser.get(f"/apps/{app.id}/status")).status_code == 404


async def test_without_github_no_page_offers_it_nor_lets_a_form_lead_there(
    new_browser: BrowserMaker,
) -> None:
    stranger, _ = await new_browser(signed_in=False)
    login = await stranger.get("/login")
    assert "Sign in with GitHub" not in login.text
    assert "form-action 'self';" in login.headers["content-security-policy"]
    browser, _ = await new_browser()
    new = await browser.get("/new")
    assert "Pick a GitHub repository" not in new.text
    assert "form-action 'self';" in new.headers["content-security-policy"]
    assert (await browser.submit("/new", "/login/github", {"next": "/new"})).status_code == 404
