"""Repository URLs: the address policy (pure), and credentials split off URLs."""

from __future__ import annotations

import pytest

from ipaas.auth.keys import Cipher
from ipaas.domain.addresses import AddressPolicy, host_refusal, numeric_form_refusal
from ipaas.domain.repo_access import (
    RepoAddress,
    RepoCredentials,
    RepoUrlError,
    decode_credentials,
    redact_url,
    repo_address,
    repo_columns,
    split_credentials,
)

NO_EXCEPTIONS = AddressPolicy()
PUBLIC_V4 = "93.184.216.34"
PUBLIC_V6 = "2606:2800:220:1:248:1893:25c8:1946"


@pytest.mark.parametrize(
    ("address", "kind"),
    [
        ("127.0.0.1", "loopback"),
        ("127.255.255.254", "loopback"),
        ("::1", "loopback"),
        ("169.254.169.254", "link-local"),  # cloud metadata
        ("fe80::1", "link-local"),
        ("10.0.0.1", "private"),
        ("172.16.0.1", "private"),
        ("172.31.255.255", "private"),
        ("192.168.1.1", "private"),
        ("fc00::1", "private"),
        ("fd12:3456::1", "private"),
        ("0.0.0.0", "unspecified"),
        ("::", "unspecified"),
        ("224.0.0.1", "multicast"),
        ("ff02::1", "multicast"),
        ("240.0.0.1", "reserved"),
        ("255.255.255.255", "reserved"),
        ("100.64.0.1", "shared (CGNAT)"),
        ("100.127.255.254", "shared (CGNAT)"),
        ("::ffff:127.0.0.1", "loopback"),  # IPv4-mapped IPv6
        ("::ffff:169.254.169.254", "link-local"),
        ("::ffff:10.1.2.3", "private"),
        ("64:ff9b::7f00:1", "loopback"),  # NAT64 of 127.0.0.1
        ("2002:7f00:1::1", "loopback"),  # 6to4 of 127.0.0.1
        ("192.0.2.1", "private"),  # documentation range: not a real host either
    ],
)
def test_internal_addresses_are_refused_with_their_kind(address: str, kind: str) -> None:
    reason = host_refusal("repo.example.com", [address], NO_EXCEPTIONS)
    assert reason is not None and f"a {kind} address" in reason


@pytest.mark.parametrize("address", [PUBLIC_V4, "8.8.8.8", "100.128.0.1", PUBLIC_V6])
def test_public_addresses_pass(address: str) -> None:
    assert host_refusal("repo.example.com", [address], NO_EXCEPTIONS) is None


def test_one_internal_address_among_public_ones_is_refused() -> None:
    reason = host_refusal("mixed.example.com", [PUBLIC_V4, "10.0.0.5"], NO_EXCEPTIONS)
    assert reason is not None and "10.0.0.5" in reason


@pytest.mark.parametrize(
    "host",
    ["2130706433", "0x7f000001", "0x7f.1", "127.1", "0177.0.0.1", "017700000001", "10.1", "1.0x1"],
)
def test_odd_numeric_forms_are_refused_without_resolving(host: str) -> None:
    assert numeric_form_refusal(host) is not None
    # Refused whatever they would resolve to, even a public address.
    assert host_refusal(host, [PUBLIC_V4], NO_EXCEPTIONS) is not None


@pytest.mark.parametrize("host", ["93.184.216.34", "github.com", "git.example-1.org", "x0.io"])
def test_names_and_canonical_addresses_are_not_numeric_forms(host: str) -> None:
    assert numeric_form_refusal(host) is None


def test_allowed_networks_let_the_operator_reach_internal_hosts() -> None:
    policy = AddressPolicy.from_lists([], ["10.20.0.0/16", "fd00:1::/32"])
    assert host_refusal("git.corp", ["10.20.3.4"], policy) is None
    assert host_refusal("git.corp", ["fd00:1::5"], policy) is None
    assert host_refusal("git.corp", ["10.21.0.1"], policy) is not None
    assert host_refusal("git.corp", ["127.0.0.1"], policy) is not None


def test_allowed_hosts_are_matched_by_name_only() -> None:
    policy = AddressPolicy.from_lists(["Git.Corp.Example."], [])
    assert host_refusal("git.corp.example", ["10.0.0.1"], policy) is None
    assert host_refusal("other.corp.example", ["10.0.0.1"], policy) is not None


# --- where a URL points ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://GitHub.com/a/b.git", RepoAddress("https", "github.com", 443)),
        ("https://u:t@host.example:8443/x", RepoAddress("https", "host.example", 8443)),
        ("https://[::1]/x", RepoAddress("https", "::1", 443)),
        ("git://127.0.0.1/x", RepoAddress("git", "127.0.0.1", 9418)),
        ("ssh://git@10.0.0.1:2222/x", RepoAddress("ssh", "10.0.0.1", 2222)),
        ("git@192.168.1.1:acme/app.git", RepoAddress("ssh", "192.168.1.1", 22)),
        ("git@[::1]:acme/app.git", RepoAddress("ssh", "::1", 22)),
        ("https://localhost./x", RepoAddress("https", "localhost", 443)),
        ("https://2130706433/x", RepoAddress("https", "2130706433", 443)),
    ],
)
def test_repo_address(url: str, expected: RepoAddress) -> None:
    assert repo_address(url) == expected


@pytest.mark.parametrize("url", ["/srv/app", "file:///srv/app", "./app"])
def test_local_paths_have_no_address(url: str) -> None:
    assert repo_address(url) is None


@pytest.mark.parametrize(
    "url", ["https://a\\@127.0.0.1/x", "https://ho$t/x", "https:///x", "https://h:99999/x"]
)
def test_hosts_other_parsers_could_read_differently_are_invalid(url: str) -> None:
    with pytest.raises(RepoUrlError):
        repo_address(url)


# --- credentials ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "clean", "credentials"),
    [
        ("https://alice:s3cret@h.example/r.git", "https://h.example/r.git", ("alice", "s3cret")),
        ("https://ghp_token@h.example/r", "https://h.example/r", ("ghp_token", "")),
        ("https://a:p%40ss@h.example:8443/r", "https://h.example:8443/r", ("a", "p@ss")),
        ("http://u:p@a@h.example/r", "http://h.example/r", ("u", "p@a")),
        ("https://h.example/r", "https://h.example/r", None),
        ("ssh://git@h.example/r", "ssh://git@h.example/r", None),
        ("git@h.example:a/r.git", "git@h.example:a/r.git", None),
    ],
)
def test_split_credentials(url: str, clean: str, credentials: tuple[str, str] | None) -> None:
    expected = RepoCredentials(*credentials) if credentials else None
    assert split_credentials(url) == (clean, expected)


def test_redact_url_hides_everything_before_the_last_at() -> None:
    assert redact_url("https://u:secret@h/x") == "https://***@h/x"
    # The old redaction stopped at the first '@' and left "b" (part of the secret) in view.
    assert redact_url("https://a@b@h/x") == "https://***@h/x"
    assert redact_url("https://h/x@y") == "https://h/x@y"
    assert redact_url("git@github.com:a/b") == "git@github.com:a/b"


def test_credentials_are_bound_to_their_url() -> None:
    cipher = Cipher("0" * 43 + "=")
    first = repo_columns(cipher, "https://a:tok1@h.example/r")
    assert first["repo"] == "https://h.example/r"
    blob = first["repo_credentials_encrypted"]
    assert blob is not None and "tok1" not in blob
    assert decode_credentials(cipher, blob) == RepoCredentials("a", "tok1")
    # The same URL without credentials keeps them (what GET shows can be sent back as it is).
    same = repo_columns(cipher, "https://h.example/r", "https://h.example/r", blob)
    assert same["repo_credentials_encrypted"] == blob
    # Another URL without credentials drops them: they must never go to another host.
    moved = repo_columns(cipher, "https://other.example/r", "https://h.example/r", blob)
    assert moved == {"repo": "https://other.example/r", "repo_credentials_encrypted": None}
    # New credentials for the same URL replace the old ones.
    new = repo_columns(cipher, "https://a:tok2@h.example/r", "https://h.example/r", blob)
    assert decode_credentials(cipher, new["repo_credentials_encrypted"]) == RepoCredentials(
        "a", "tok2"
    )
