"""The databases pages without JavaScript, on the session's plane (real store, no engine: the
databases are stored in the state a test needs). The create form and its errors, attaching
and detaching, credentials shown only on request, backups (download, schedule), delete, and
another user's database answering 404 everywhere. The engine side is in tests/e2e."""

from __future__ import annotations

import html

import pytest

from ipaas.domain.databases import BackupStatus
from ipaas.platform import ControlPlane
from tests.factories import stored_app, stored_database
from tests.web.browser import csrf_of, field_error
from tests.web.conftest import BrowserMaker


async def test_creating_a_database_from_the_form(
    new_browser: BrowserMaker, core: ControlPlane
) -> None:
    browser, user = await new_browser()
    name = f"db-{user['id'][:8]}"
    fields = {"name": name, "engine": "redis", "version": "", "memory_mb": "128", "cpus": ""}
    r = await browser.submit("/databases/new", "/databases/new", fields)
    assert r.status_code == 303, r.text
    db_id = r.headers["location"].rsplit("/", 1)[1]
    db = await core.stores.databases.get(db_id, user["id"])
    assert (db.name, db.engine, db.memory_mb) == (name, "redis", 128)
    listing = (await browser.get("/databases")).text
    assert f'<tr data-db="{name}">' in listing and f"/databases/{db_id}" in listing


@pytest.mark.parametrize(
    ("fields", "field", "message"),
    [
        ({"name": "Bad_Name"}, "name", "String should match pattern"),
        ({"engine": "oracle"}, "engine", "unknown engine 'oracle'"),
        ({"version": "9.6"}, "version", "postgres 9.6 is not offered"),
        ({"memory_mb": "16"}, "memory_mb", "a database needs at least 64 MB"),
        ({"memory_mb": "lots"}, "memory_mb", "valid integer"),
        ({"cpus": "0"}, "cpus", "greater than 0"),
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
    request = {"name": f"ok-{user['id'][:8]}", "engine": "postgres", **fields}
    r = await browser.submit("/databases/new", "/databases/new", request)
    assert r.status_code == 422
    assert message in field_error(r.text, field)
    assert f'value="{html.escape(request["name"])}"' in r.text  # what was typed stays
    assert await core.stores.databases.list(user["id"]) == []


async def test_a_taken_name_is_refused(new_browser: BrowserMaker, core: ControlPlane) -> None:
    browser, user = await new_browser()
    mine = await stored_database(core, user["id"])
    fields = {"name": mine.name, "engine": "postgres"}
    r = await browser.submit("/databases/new", "/databases/new", fields)
    assert r.status_code == 422
    assert f"you already have a database named {mine.name!r}" in field_error(r.text, "name")


async def test_another_users_database_answers_404_everywhere(
    new_browser: BrowserMaker, core: ControlPlane
) -> None:
    browser, _ = await new_browser()
    _, other = await new_browser()
    db = await stored_database(core, other["id"])
    theirs = await stored_app(core.stores, other["id"])
    await core.stores.databases.attach(db.id, theirs.id, "DATABASE_URL")
    backup = await core.stores.databases.add_backup(db.id, "manual")
    for path in ("", "/credentials", "/data", "/data?table=t", "/backups", "/settings",
                 "/status", f"/backups/{backup.id}/download"):  # fmt: skip
        r = await browser.get(f"/databases/{db.id}{path}")
        assert r.status_code == 404, path
        assert db.name not in r.text
    token = csrf_of((await browser.get("/databases")).text)
    fields = {"csrf_token": token, "confirm": db.name, "app_id": theirs.id, "sql": "SELECT 1"}
    for action in ("credentials", "credentials/rotate", "restart", "detach", "attach",
                   "backups", f"backups/{backup.id}/restore", "backups/schedule", "delete",
                   "data/query"):  # fmt: skip
        r = await browser.post(f"/databases/{db.id}/{action}", fields)
        assert r.status_code == 404, action
        assert db.name not in r.text
    after = await core.stores.databases.get(db.id)
    assert after.state == "running" and len(await core.stores.databases.attachments(db.id)) == 1


async def test_a_form_without_the_csrf_token_is_refused(
    new_browser: BrowserMaker, core: ControlPlane
) -> None:
    browser, user = await new_browser()
    db = await stored_database(core, user["id"])
    await browser.get("/databases")
    r = await browser.post(f"/databases/{db.id}/delete", {"confirm": db.name})
    assert r.status_code == 403 and "Form refused" in r.text
    r = await browser.post(f"/databases/{db.id}/credentials", {})
    assert r.status_code == 403 and "Password" not in r.text
    assert (await core.stores.databases.get(db.id)).state == "running"


async def test_attach_and_detach_from_the_overview(
    new_browser: BrowserMaker, core: ControlPlane
) -> None:
    browser, user = await new_browser()
    _, other = await new_browser()
    db = await stored_database(core, user["id"])
    app = await stored_app(core.stores, user["id"])
    theirs = await stored_app(core.stores, other["id"])
    overview = f"/databases/{db.id}"
    page = (await browser.get(overview)).text
    assert f'<option value="{app.id}">{app.name}</option>' in page and theirs.name not in page

    bad = await browser.submit(
        overview, f"{overview}/attach", {"app_id": app.id, "env_name": "lower"}
    )
    assert bad.status_code == 422 and "upper-case" in field_error(bad.text, "env_name")
    stolen = await browser.submit(overview, f"{overview}/attach", {"app_id": theirs.id})
    assert stolen.status_code == 422 and "no such application" in field_error(stolen.text, "attach")

    r = await browser.submit(overview, f"{overview}/attach", {"app_id": app.id, "env_name": ""})
    assert r.status_code == 303 and r.headers["location"].endswith("?done=attached")
    links = await core.stores.databases.attachments(db.id)
    assert [(link.app_id, link.env_name) for link, _ in links] == [(app.id, "DATABASE_URL")]
    page = (await browser.get(r.headers["location"])).text
    assert f'data-attached="{app.name}"' in page and "Attached:" in page

    r = await browser.submit(overview, f"{overview}/detach", {"app_id": app.id})
    assert r.status_code == 303
    assert await core.stores.databases.attachments(db.id) == []


async def test_credentials_are_shown_only_on_request(
    new_browser: BrowserMaker, core: ControlPlane
) -> None:
    browser, user = await new_browser()
    db = await stored_database(core, user["id"])
    creds = core.database_service.credentials(db)
    page = await browser.get(f"/databases/{db.id}/credentials")
    assert page.status_code == 200 and creds.password not in page.text
    shown = await browser.post(
        f"/databases/{db.id}/credentials", {"csrf_token": csrf_of(page.text)}
    )
    assert shown.status_code == 200 and shown.headers["cache-control"] == "no-store"
    assert creds.password in shown.text and html.escape(creds.url) in shown.text


async def test_backups_list_download_and_schedule(
    new_browser: BrowserMaker, core: ControlPlane
) -> None:
    browser, user = await new_browser()
    db = await stored_database(core, user["id"])
    stores = core.stores.databases
    good = await stores.add_backup(db.id, "manual")
    folder = core.backup_service.backups_dir / db.id
    folder.mkdir(parents=True)
    (folder / "good.pgdump").write_bytes(b"PGDMP the dump")
    await stores.finish_backup(good.id, BackupStatus.SUCCEEDED, file_name="good.pgdump",
                               size_bytes=14, verified={"tables": {"notes": 3}})  # fmt: skip
    bad = await stores.add_backup(db.id, "scheduled")
    await stores.finish_backup(bad.id, BackupStatus.FAILED, error="the dump failed: <disk full>")
    page = f"/databases/{db.id}/backups"
    text = (await browser.get(page)).text
    assert f'data-backup="{good.id}" data-status="succeeded"' in text
    assert "1 table, 3 rows" in text and "the dump failed: &lt;disk full&gt;" in text
    assert f"/backups/{good.id}/download" in text and f"/backups/{bad.id}/download" not in text

    download = await browser.get(f"{page}/{good.id}/download")
    assert download.status_code == 200 and download.content == b"PGDMP the dump"
    assert "good.pgdump" in download.headers["content-disposition"]
    refused = await browser.submit(page, f"{page}/{bad.id}/restore", {})
    assert refused.status_code == 409 and "only a verified backup" in refused.text

    r = await browser.submit(page, f"{page}/schedule", {"interval_h": "6", "keep": "3"})
    assert r.status_code == 303
    saved = await stores.get(db.id)
    assert (saved.backup_interval_s, saved.backup_keep) == (6 * 3600, 3)
    bad_keep = await browser.submit(page, f"{page}/schedule", {"interval_h": "1", "keep": "0"})
    assert bad_keep.status_code == 422 and "greater than or equal to 1" in field_error(
        bad_keep.text, "keep"
    )
    words = await browser.submit(page, f"{page}/schedule", {"interval_h": "daily", "keep": "3"})
    assert words.status_code == 422 and "number of hours" in field_error(words.text, "interval_h")
    r = await browser.submit(page, f"{page}/schedule", {"cron": "30 3 * * *", "keep": "5"})
    assert r.status_code == 303
    saved = await stores.get(db.id)
    assert (saved.backup_cron, saved.backup_keep) == ("30 3 * * *", 5)
    assert 'name="cron" value="30 3 * * *"' in (await browser.get(page)).text
    bad_cron = await browser.submit(page, f"{page}/schedule", {"cron": "61 * * * *", "keep": "5"})
    assert bad_cron.status_code == 422 and field_error(bad_cron.text, "cron")
    # Closer than databases.min_backup_interval_s (an hour): named on the field at fault.
    tight = await browser.submit(page, f"{page}/schedule", {"cron": "0,1 * * * *", "keep": "5"})
    assert tight.status_code == 422 and "within 60 s" in field_error(tight.text, "cron")
    often = await browser.submit(page, f"{page}/schedule", {"interval_h": "0.5", "keep": "5"})
    assert often.status_code == 422 and "one per 3600 s" in field_error(often.text, "interval_h")
    assert (await stores.get(db.id)).backup_cron == "30 3 * * *"


async def test_delete_needs_the_name_and_no_attached_app(
    new_browser: BrowserMaker, core: ControlPlane
) -> None:
    browser, user = await new_browser()
    db = await stored_database(core, user["id"], state="failed")
    app = await stored_app(core.stores, user["id"])
    await core.stores.databases.attach(db.id, app.id, "DATABASE_URL")
    page = f"/databases/{db.id}/settings"
    r = await browser.submit(page, f"/databases/{db.id}/delete", {"confirm": "not-it"})
    assert r.status_code == 422 and f"type {db.name} to confirm" in r.text
    r = await browser.submit(page, f"/databases/{db.id}/delete", {"confirm": db.name})
    assert r.status_code == 409
    assert f"the database is attached to {app.name}" in field_error(r.text, "form")
    await core.stores.databases.detach(db.id, app.id)
    r = await browser.submit(page, f"/databases/{db.id}/delete", {"confirm": db.name})
    assert r.status_code == 303 and r.headers["location"] == "/databases?deleted=1"
    assert (await core.stores.databases.get(db.id)).final_backup is False  # box left unticked


async def test_the_viewer_waits_for_a_running_database(
    new_browser: BrowserMaker, core: ControlPlane
) -> None:
    browser, user = await new_browser()
    db = await stored_database(core, user["id"], state="creating")
    r = await browser.get(f"/databases/{db.id}/data")
    assert r.status_code == 200 and "this one is creating" in r.text
    status = await browser.get(f"/databases/{db.id}/status", headers={"HX-Request": "true"})
    assert status.status_code == 200 and 'hx-trigger="every 2s"' in status.text
