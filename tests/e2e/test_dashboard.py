"""The dashboard in a real browser (Debian's Chromium through Playwright) on the real platform:
sign in, create an app and watch it reach running without reloading, open it, follow its logs
live (a burst too), change an env var, delete it with its name typed. Each step leaves a
screenshot in the test's folder; no page may log a script error or a CSP refusal."""

from __future__ import annotations

import asyncio
import re
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.chromium import chromium, screenshots, watched_page
from tests.e2e.apps import DOCKERFILE
from tests.e2e.conftest import E2E
from tests.factories import stored_app

__all__ = ["chromium"]
pytestmark = [pytest.mark.docker, pytest.mark.slow]

# GET / answers GREETING; /say?text= prints the text; /emit?n= prints n lines at once.
SERVER = r"""
import os
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, urlsplit

class Talker(BaseHTTPRequestHandler):
    def log_message(self, *args):
        return None

    def do_GET(self):
        path, query = urlsplit(self.path)[2:4]
        args = dict(parse_qsl(query))
        if path == "/say":
            print(args["text"], flush=True)
        elif path == "/emit":
            print("".join(f"burst {i}\n" for i in range(int(args["n"]))), end="", flush=True)
        body = os.environ.get("GREETING", "hello").encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

print("listening", flush=True)
ThreadingHTTPServer(("0.0.0.0", int(os.environ["PORT"])), Talker).serve_forever()
"""
# Longest gap between two animation frames since the page started watching.
WATCH_FRAMES = """() => { window.maxGap = 0; let last = performance.now();
  const tick = (t) => { window.maxGap = Math.max(window.maxGap, t - last); last = t;
    requestAnimationFrame(tick); }; requestAnimationFrame(tick); }"""
BUILD_S = 240_000


async def test_deploy_follow_change_and_delete_an_app_in_the_browser(
    e2e: E2E, chromium: Any, tmp_path: Path
) -> None:
    from playwright.async_api import expect

    repo = e2e.repo(files={"Dockerfile": DOCKERFILE, "server.py": SERVER})
    context = await chromium.new_context(
        base_url=e2e.live.base, viewport={"width": 1280, "height": 860}
    )
    page, problems = await watched_page(context)
    shot = screenshots(page, tmp_path)
    try:
        await _sign_in(page, e2e, "/apps")

        # New app: the name is checked as it is typed.
        await page.click("text=New app")
        name = f"web-{uuid.uuid4().hex[:8]}"
        await page.fill("input[name=name]", name)
        await expect(page.locator("#name-check")).to_have_text(f"{name} is available")
        await page.fill("input[name=repo]", f"file://{repo}")
        await shot("new-app")
        await page.click("button:has-text('Create app')")
        await expect(page).to_have_url(re.compile(r"/apps/[0-9a-f]+$"))
        app_url = page.url

        # The state moves on its own, with no reload (a reload would drop this marker).
        await page.evaluate("window.stayedHere = true")
        await expect(page.locator("#app-status [data-state]")).to_have_text(
            "running", timeout=BUILD_S
        )
        assert await page.evaluate("window.stayedHere === true")
        await page.reload()
        await shot("running")

        # Its URL opens in the browser (*.localhost is loopback to Chromium).
        opened = await context.new_page()
        await opened.goto(await page.locator("a:has-text('Open app')").get_attribute("href") or "")
        await expect(opened.locator("body")).to_have_text("hello")
        await opened.close()

        await _follow_logs(page, e2e, name, shot)
        await _change_env(page, e2e, name, app_url, shot)

        # Delete: the button waits for the name; the app leaves the list.
        await page.goto(f"{app_url}/settings")
        delete = page.locator("button:has-text('Delete app')")
        await expect(delete).to_be_disabled()
        await page.fill("input[name=confirm]", name)
        await expect(delete).to_be_enabled()
        await delete.click()
        await expect(page).to_have_url(re.compile(r"/apps\?deleted=1$"))
        await expect(page.locator(".notice")).to_have_text("App deleted.")
        await expect(page.locator(f'tr[data-app="{name}"]')).to_have_count(0)
        await shot("deleted")
    finally:
        await context.close()
    assert problems == [], problems


async def _sign_in(page: Any, e2e: E2E, wanted: str) -> None:
    """Open `wanted`, get sent to the sign-in form, sign in as the admin, land on it."""
    from playwright.async_api import expect

    await page.goto(wanted)
    await expect(page).to_have_url(re.compile(rf"/login\?next={re.escape(wanted)}$"))
    await page.fill("input[name=username]", e2e.admin_name)
    await page.fill("input[name=password]", e2e.admin_password)
    await page.click("button:has-text('Sign in')")
    await expect(page).to_have_url(re.compile(rf"{re.escape(wanted)}$"))


async def _follow_logs(page: Any, e2e: E2E, name: str, shot: Any) -> None:
    """A line appears as it is written, as text; a burst is drawn in batches, capped."""
    from playwright.async_api import expect

    await page.click("nav.tabs >> text=Logs")
    await expect(page.locator("[data-log-state]")).to_have_text("live")
    e2e.via_router(name, "/say?text=<b>from-the-browser</b>")
    log = page.locator("#log")
    await expect(log).to_contain_text("<b>from-the-browser</b>", timeout=20_000)
    assert await page.locator("#log b").count() == 0  # shown as text, never as markup

    await page.evaluate(WATCH_FRAMES)
    started = time.monotonic()
    e2e.via_router(name, "/emit?n=8000")
    await expect(log).to_contain_text("burst 7999", timeout=30_000)
    took = time.monotonic() - started
    kept = await page.locator("#log span.l").count()
    gap = await page.evaluate("window.maxGap")
    print(f"8000 lines drawn in {took:.2f} s; {kept} kept; longest frame gap {gap:.0f} ms")
    assert kept <= 5000
    # A loose bound (test machines are shared); bench/dashboard.py measures it on a quiet one.
    assert gap < 3000, f"the page froze for {gap:.0f} ms"
    await shot("logs")


async def _change_env(page: Any, e2e: E2E, name: str, app_url: str, shot: Any) -> None:
    from playwright.async_api import expect

    await page.goto(f"{app_url}/settings")
    form = page.locator("form.add-env")
    await form.locator("input[name=key]").fill("GREETING")
    await form.locator("input[name=value]").fill("hi from the browser")
    await form.locator("button:has-text('Add')").click()
    await expect(page.locator(".notice")).to_contain_text("Environment saved")
    await expect(page.locator('tr[data-env="GREETING"] input[name=value]')).to_have_value(
        "hi from the browser"
    )
    await shot("settings")
    deadline = time.monotonic() + 120
    while e2e.via_router(name).text != "hi from the browser":
        assert time.monotonic() < deadline, "the app never answered with the new value"
        await asyncio.sleep(0.5)
    await expect(page.locator("#app-status [data-state]")).to_have_text("running", timeout=60_000)


# --- databases ----------------------------------------------------------------------------------
DB_S = 120_000


async def test_create_attach_view_back_up_and_restore_a_database_in_the_browser(
    e2e: E2E, chromium: Any, tmp_path: Path
) -> None:
    """Postgres through the pages: made by the form, attached to an app, its rows paged in the
    viewer and queried in the console, backed up, changed, restored; a Redis database's keys
    browsed. No reload is needed to see a state change."""
    from playwright.async_api import expect

    redis = _api_database(e2e, "redis")  # made meanwhile, through the API
    app = e2e.live.run(stored_app(e2e.live.plane.stores, _admin_id(e2e)))  # never built
    app_id = app.id
    context = await chromium.new_context(
        base_url=e2e.live.base, viewport={"width": 1280, "height": 860}
    )
    page, problems = await watched_page(context)
    shot = screenshots(page, tmp_path)
    try:
        await _sign_in(page, e2e, "/databases")
        await page.click("text=New database")
        name = f"pg-{uuid.uuid4().hex[:6]}"
        await page.fill("input[name=name]", name)
        await page.select_option("select[name=engine]", "postgres")
        await shot("db-new")
        await page.click("button:has-text('Create database')")
        await expect(page).to_have_url(re.compile(r"/databases/[0-9a-f]+$"))
        db_url = page.url
        db_id = db_url.rsplit("/", 1)[1]
        await page.evaluate("window.stayedHere = true")
        await expect(page.locator(f"#db-status-{db_id} [data-state]")).to_have_text(
            "running", timeout=DB_S
        )
        assert await page.evaluate("window.stayedHere === true")
        _seed(e2e, db_id, "CREATE TABLE notes (id INT PRIMARY KEY, body TEXT); "
              "INSERT INTO notes SELECT n, 'note ' || n FROM generate_series(1, 120) n")  # fmt: skip

        # Attach to an app: it is listed with the variable it gets.
        await page.select_option("select[name=app_id]", app_id)
        await page.click("form.attach button:has-text('Attach')")
        await expect(page.locator(".notice")).to_contain_text("Attached")
        await expect(page.locator("#attachments tr[data-attached] code")).to_have_text(
            "DATABASE_URL"
        )
        await shot("db-attached")

        # The viewer: the table, its rows a page at a time, the console.
        await page.click("nav.tabs >> text=Data")
        await page.click("nav.tables >> text=notes")
        rows = page.locator("#rows tbody tr")
        await expect(rows).to_have_count(50)
        await expect(rows.first).to_contain_text("note 1")
        await page.click("a:has-text('Next →')")
        await expect(rows.first).to_contain_text("note 51")
        await page.fill("textarea[name=sql]", "SELECT count(*) AS n FROM notes")
        await page.click("#console button:has-text('Run')")
        await expect(page.locator("#result tbody td")).to_have_text("120")
        await page.fill("textarea[name=sql]", "DELETE FROM notes")
        await page.click("#console button:has-text('Run')")
        await expect(page.locator("#error-sql")).to_contain_text("read-only")
        await shot("db-data")

        # Back up, lose rows, restore: they are back.
        await page.click("nav.tabs >> text=Backups")
        await page.click("button:has-text('Back up now')")
        good = page.locator("#backups tr[data-status=succeeded]")
        await expect(good).to_have_count(1, timeout=DB_S)
        await expect(good).to_contain_text("120 rows")
        _seed(e2e, db_id, "DELETE FROM notes WHERE id > 10")
        await good.locator("button:has-text('Restore')").click()
        await expect(page.locator(".notice")).to_contain_text("Restore started")
        job = page.locator("tr[data-job=restore]")
        await expect(job.locator(".build")).not_to_have_text("running", timeout=DB_S)
        assert await job.locator(".build").text_content() == "succeeded", await job.text_content()
        await shot("db-restored")
        await page.click("nav.tabs >> text=Data")
        await page.fill("textarea[name=sql]", "SELECT count(*) FROM notes")
        await page.click("#console button:has-text('Run')")
        await expect(page.locator("#result tbody td")).to_have_text("120")

        # Credentials on request.
        await page.click("nav.tabs >> text=Credentials")
        await expect(page.locator("[data-password]")).to_have_count(0)
        await page.click("button:has-text('Show credentials')")
        await expect(page.locator("[data-password]")).not_to_be_empty()

        # Redis: the key browser.
        _redis(redis["id"], "SET", "greeting:en", "hello")
        await page.goto(f"/databases/{redis['id']}/data")
        await page.fill("input[name=pattern]", "greeting:*")
        await page.click("button:has-text('Scan')")
        await expect(page.locator('tr[data-key="greeting:en"]')).to_contain_text("hello")
        await shot("redis-keys")

        # Detach, then delete with the name typed.
        await page.goto(db_url)
        await page.click("#attachments button:has-text('Detach')")
        await expect(page.locator("#attachments tr[data-attached]")).to_have_count(0)
        await page.goto(f"{db_url}/settings")
        delete = page.locator("button:has-text('Delete database')")
        await expect(delete).to_be_disabled()
        await page.fill("input[name=confirm]", name)
        await page.uncheck("input[name=final_backup]")
        await delete.click()
        await expect(page).to_have_url(re.compile(r"/databases\?deleted=1$"))
    finally:
        await context.close()
        _clean_up(e2e, app_id)
    assert problems == [], problems


def _admin_id(e2e: E2E) -> str:
    user = e2e.live.run(e2e.live.plane.stores.users.by_username(e2e.admin_name))
    assert user is not None
    return user.id


def _api_database(e2e: E2E, engine: str) -> dict[str, Any]:
    body = {"name": f"{engine}-{uuid.uuid4().hex[:6]}", "engine": engine}
    r = httpx.post(f"{e2e.live.base}/api/v1/databases", json=body, headers=e2e.headers)
    assert r.status_code == 201, r.text
    return dict(r.json())


def _clean_up(e2e: E2E, app_id: str) -> None:
    """The databases the test left (the flow deletes its own) and the app."""
    dbs = f"{e2e.live.base}/api/v1/databases"
    for db in httpx.get(dbs, headers=e2e.headers, timeout=30).json():
        if db["state"] != "deleting":
            for link in httpx.get(f"{dbs}/{db['id']}/attachments", headers=e2e.headers).json():
                httpx.delete(f"{dbs}/{db['id']}/attachments/{link['app_id']}", headers=e2e.headers)
            httpx.delete(f"{dbs}/{db['id']}?final_backup=false", headers=e2e.headers)
    httpx.delete(f"{e2e.api}/{app_id}", headers=e2e.headers, timeout=30)


def _container(db_id: str) -> Any:
    import docker

    deadline = time.monotonic() + DB_S / 1000
    while time.monotonic() < deadline:
        found = docker.from_env().containers.list(filters={"label": f"org.ipaas.database={db_id}"})
        if found:
            return found[0]
        time.sleep(0.5)
    raise AssertionError(f"no container for database {db_id}")


def _seed(e2e: E2E, db_id: str, statements: str) -> None:
    """SQL as the database's own login, from inside its container (the viewer only reads)."""
    creds = httpx.get(f"{e2e.live.base}/api/v1/databases/{db_id}/credentials", headers=e2e.headers)
    as_owner = f'SET ROLE "{creds.json()["username"]}"; {statements}'  # as the app would
    argv = ["ipaas-db", "admin", "-d", creds.json()["database"], "-At", "-c", as_owner]
    result = _container(db_id).exec_run(argv)
    assert result.exit_code == 0, result.output


def _redis(db_id: str, *words: str) -> None:
    deadline = time.monotonic() + DB_S / 1000
    while True:  # the database may still be starting
        result = _container(db_id).exec_run(["ipaas-db", "admin", *words])
        if result.exit_code == 0 and b"ERR" not in result.output:
            return
        assert time.monotonic() < deadline, result.output
        time.sleep(0.5)
