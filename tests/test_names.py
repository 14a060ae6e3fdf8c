"""Reserved names: refused at create and rename (422 `name_reserved`), reported by
/validate/name, and the list is the operator's to change."""

from __future__ import annotations

import uuid

import httpx
import pytest

from ipaas.api.app import create_app
from ipaas.domain.names import DEFAULT_RESERVED_NAMES, is_reserved
from ipaas.platform import ControlPlane
from tests.conftest import UserMaker, auth
from tests.fakes import fake_plane

APPS = "/api/v1/applications"
REPO = "https://example.invalid/x.git"


@pytest.mark.parametrize("name", ["www", "api", "admin", "billing", "mail", "ns1", "localhost"])
async def test_create_with_a_reserved_name_is_422(
    client: httpx.AsyncClient, make_user: UserMaker, name: str
) -> None:
    user = await make_user()
    r = await client.post(APPS, json={"name": name, "repo": REPO}, headers=auth(user))
    assert r.status_code == 422, r.text
    assert r.json()["code"] == "name_reserved"
    listed = (await client.get(APPS, headers=auth(user))).json()
    assert listed["total"] == 0  # nothing half-created


async def test_rename_to_a_reserved_name_is_422_and_changes_nothing(
    client: httpx.AsyncClient, make_user: UserMaker
) -> None:
    user = await make_user()
    name = f"mine-{uuid.uuid4().hex[:8]}"
    r = await client.post(APPS, json={"name": name, "repo": REPO}, headers=auth(user))
    app_id = r.json()["id"]
    r = await client.patch(f"{APPS}/{app_id}", json={"name": "dashboard"}, headers=auth(user))
    assert r.status_code == 422 and r.json()["code"] == "name_reserved"
    assert (await client.get(f"{APPS}/{app_id}", headers=auth(user))).json()["name"] == name


async def test_validate_name_reports_reserved_names(
    client: httpx.AsyncClient, make_user: UserMaker
) -> None:
    user = await make_user()
    for name in ("support", "smtp", "www"):
        r = await client.post("/api/v1/validate/name", json={"name": name}, headers=auth(user))
        assert r.status_code == 200
        assert r.json() == {
            "name": name,
            "valid": False,
            "available": False,
            "reason": "this name is reserved",
        }


async def test_the_operator_list_replaces_the_default(
    core: ControlPlane, make_user: UserMaker
) -> None:
    settings = core.settings.model_copy(update={"reserved_names": ["acme", "www"]})
    plane = fake_plane(settings)  # the same store and keys, the operator's own list
    app = create_app(plane, manage_lifecycle=False)
    user = await make_user()
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://ipaas.test"
    ) as c:
        r = await c.post(APPS, json={"name": "acme", "repo": REPO}, headers=auth(user))
        assert r.status_code == 422 and r.json()["code"] == "name_reserved"
        r = await c.post("/api/v1/validate/name", json={"name": "acme"}, headers=auth(user))
        assert r.json()["reason"] == "this name is reserved"
        r = await c.post("/api/v1/validate/name", json={"name": "billing"}, headers=auth(user))
        assert r.json()["valid"] is True
    await plane.lifecycle.close()


def test_the_default_list_covers_the_platform_and_mail_hosts() -> None:
    for name in ("api", "admin", "www", "mail", "ftp", "smtp", "imap", "pop", "ns1", "ns2"):
        assert is_reserved(name, DEFAULT_RESERVED_NAMES)
    assert not is_reserved("my-shop", DEFAULT_RESERVED_NAMES)
    assert all(n == n.lower() and 2 <= len(n) <= 63 for n in DEFAULT_RESERVED_NAMES)
