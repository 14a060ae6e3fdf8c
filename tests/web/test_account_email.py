"""The e-mail address from the account page, and a forgotten password from the sign-in page:
the API's rules (unconfirmed until the link is followed; the same answer for any address)."""

from __future__ import annotations

from datetime import timedelta

from ipaas.platform import ControlPlane
from ipaas.store.models import utcnow
from tests.web.conftest import BrowserMaker


async def mails_to(core: ControlPlane, address: str) -> list[str]:
    due = await core.stores.notices.due_messages(utcnow() + timedelta(days=1), 500, ["email"])
    return [m.body for m in due if m.to_address == address]


async def test_a_new_address_is_unconfirmed_and_gets_a_link(
    new_browser: BrowserMaker, core: ControlPlane
) -> None:
    browser, user = await new_browser()
    address = f"{user['username']}@example.test"
    r = await browser.submit("/account", "/account/email", {"email": address})
    assert r.status_code == 303 and r.headers["location"] == "/account?done=email"
    page = (await browser.get(r.headers["location"])).text
    assert address in page and "(not confirmed)" in page and "on its way" in page
    stored = await core.stores.users.get(user["id"])
    assert stored is not None and stored.email == address and not stored.email_verified
    (body,) = await mails_to(core, address)
    assert "verify-email?token=" in body


async def test_a_bad_address_is_shown_next_to_the_field_and_changes_nothing(
    new_browser: BrowserMaker, core: ControlPlane
) -> None:
    browser, user = await new_browser()
    r = await browser.submit("/account", "/account/email", {"email": "not an address"})
    assert r.status_code == 422 and "that is not an e-mail address" in r.text
    stored = await core.stores.users.get(user["id"])
    assert stored is not None and stored.email is None


async def test_a_forgotten_password_link_goes_to_the_confirmed_address_only(
    new_browser: BrowserMaker, core: ControlPlane
) -> None:
    _, user = await new_browser()
    address = f"{user['username']}@example.test"
    await core.stores.users.set_email(user["id"], address, verified=True)
    stranger, _ = await new_browser(signed_in=False)
    assert 'href="/login/reset"' in (await stranger.get("/login")).text
    nobody = f"nobody-{user['username']}@example.test"
    answers = [
        await stranger.submit("/login/reset", "/login/reset", {"email": wanted})
        for wanted in (address.upper(), nobody)
    ]
    # The same answer for an account's address and for anyone else's.
    for r in answers:
        assert r.status_code == 200 and "is on its way" in r.text
    (body,) = await mails_to(core, address)
    assert "password-reset?token=" in body
    assert await mails_to(core, nobody) == []


async def test_reset_requests_are_throttled_per_address(new_browser: BrowserMaker) -> None:
    stranger, _ = await new_browser(signed_in=False)
    answers = [
        (await stranger.submit("/login/reset", "/login/reset", {"email": "x@example.test"}))
        for _ in range(12)
    ]
    assert answers[0].status_code == 200
    assert answers[-1].status_code == 429 and "Too many requests" in answers[-1].text
