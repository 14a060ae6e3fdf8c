"""The account's notice preferences page without JavaScript: what comes by e-mail, saved as
the API's preferences; the crash digest follows the crash notice and is not offered apart."""

from __future__ import annotations

import re

import httpx

from ipaas.platform import ControlPlane
from tests.conftest import auth
from tests.web.conftest import BrowserMaker


def ticked(page: str) -> dict[str, bool]:
    rows = re.findall(
        r'data-kind="([a-z_]+)">\s*<input type="checkbox" name="\1" value="1" ?(checked)?', page
    )
    return {kind: bool(on) for kind, on in rows}


async def test_preferences_start_at_the_defaults_and_save_as_the_api_reads_them(
    new_browser: BrowserMaker, client: httpx.AsyncClient
) -> None:
    browser, user = await new_browser()
    page = (await browser.get("/account/notices")).text
    shown = ticked(page)
    assert shown["build_failed"] and shown["backup_failed"] and not shown["deploy_succeeded"]
    assert "crash_digest" not in shown and "is not confirmed" not in page
    assert "You have no e-mail address" in page

    wanted = dict(shown, deploy_succeeded=True, build_failed=False)
    fields = {kind: "1" for kind, on in wanted.items() if on}
    r = await browser.submit("/account/notices", "/account/notices", fields)
    assert r.status_code == 303 and r.headers["location"] == "/account/notices?done=notices"
    again = (await browser.get(r.headers["location"])).text
    assert ticked(again) == wanted and "Notice preferences saved." in again

    prefs = (await client.get("/api/v1/users/me/notice-preferences", headers=auth(user))).json()
    assert prefs["email"]["deploy_succeeded"] is True and prefs["email"]["build_failed"] is False
    assert prefs["email"]["crash_digest"] is True  # not on the page: left as it was


async def test_saving_without_the_form_token_changes_nothing(
    new_browser: BrowserMaker, core: ControlPlane
) -> None:
    browser, user = await new_browser()
    await browser.get("/account/notices")
    r = await browser.post("/account/notices", {"deploy_succeeded": "1"})
    assert r.status_code == 403
    assert await core.stores.notices.preferences(user["id"]) == {}
