"""Who may open an app's URL, where a sign-in may send the browser, which host names an app."""

from __future__ import annotations

import pytest

from ipaas.domain.access import Gate, gate, safe_next
from ipaas.domain.hosts import HostNames


@pytest.mark.parametrize(
    ("visibility", "viewer", "role", "expected"),
    [
        ("public", None, None, Gate.ALLOW),
        ("public", "stranger", "user", Gate.ALLOW),
        ("private", None, None, Gate.LOGIN),
        ("private", "owner", "user", Gate.ALLOW),
        ("private", "stranger", "user", Gate.DENY),
        ("private", "someone", "admin", Gate.ALLOW),
    ],
)
def test_private_apps_open_to_their_owner_and_admins_only(
    visibility: str, viewer: str | None, role: str | None, expected: Gate
) -> None:
    assert gate(visibility, "owner", viewer, role) == expected


@pytest.mark.parametrize(
    ("wanted", "goes_to"),
    [
        ("/dash?x=1", "/dash?x=1"),
        (None, "/"),
        ("", "/"),
        ("https://evil.example/", "/"),
        ("//evil.example/", "/"),
        ("/\\evil.example", "/"),
        ("/a\r\nSet-Cookie: x=1", "/"),
        ("dash", "/"),
    ],
)
def test_after_signing_in_only_paths_of_the_same_host(wanted: str | None, goes_to: str) -> None:
    assert safe_next(wanted) == goes_to


@pytest.mark.parametrize(
    ("host", "name"),
    [
        ("shop.apps.test", "shop"),
        ("SHOP.Apps.Test:8080", "shop"),
        ("apps.test", None),
        ("a.b.apps.test", None),
        ("shop.apps.test.evil", None),
        ("shopapps.test", None),
        ("[::1]:8080", None),
        ("", None),
    ],
)
def test_only_direct_subdomains_of_the_base_domain_name_an_app(host: str, name: str | None) -> None:
    assert HostNames("apps.test").name_of(host) == name
