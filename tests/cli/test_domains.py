"""`ipaas apps domains`: add, list, verify and remove through the API, as a user sees them
(this platform's DNS knows no name, so domains stay unverified and say what to set)."""

from __future__ import annotations

import json
import uuid

from tests.cli.conftest import Cli
from tests.cli.test_apps import create


def test_add_list_verify_remove(user_cli: Cli) -> None:
    name, _ = create(user_cli)
    domain = f"shop-{uuid.uuid4().hex[:6]}.acme-paas.net"
    added = user_cli("apps", "domains", "add", name, domain, "--redirect-www")
    assert added.exit_code == 0, added.output
    assert domain in added.output and f"www.{domain}" in added.output
    assert (
        f"_ipaas-challenge.{domain}" in added.output and "Not served until verified" in added.output
    )

    listed = json.loads(user_cli("apps", "domains", "list", name, "-o", "json").output)
    assert {d["domain"]: d["redirect_to"] for d in listed} == {
        domain: None,
        f"www.{domain}": domain,
    }
    verified = json.loads(user_cli("apps", "domains", "verify", name, domain, "-o", "json").output)
    assert verified["domain"] == domain and not verified["verified"]

    refused = user_cli("apps", "domains", "add", name, "127.0.0.1")
    assert refused.exit_code == 1 and "IP address" in refused.output
    removed = user_cli("apps", "domains", "remove", name, domain)
    assert removed.exit_code == 0 and f"removed {domain}" in removed.output
    assert json.loads(user_cli("apps", "domains", "list", name, "-o", "json").output) == []
    again = user_cli("apps", "domains", "remove", name, domain)
    assert again.exit_code == 1 and "no such domain" in again.output
