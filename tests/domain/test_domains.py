"""Which names may be an app's domain, what verifies one, and its certificate's state."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from ipaas.domain.domains import (
    DEFAULT_RESERVED_DOMAINS,
    CertificateInfo,
    CertState,
    DomainProblem,
    Lookup,
    VerifiedBy,
    cert_state,
    counterpart,
    domain_problem,
    normalize,
    records_to_set,
    verified_by,
)

BASE = "apps.acme-paas.net"
P = DomainProblem


@pytest.mark.parametrize(
    ("name", "problem"),
    [
        ("shop.acme.io", None),
        ("www.shop.acme.io", None),
        ("xn--bcher-kva.ch", None),
        ("a-b.c-d.io", None),
        ("apps.acme-paas.net", P.PLATFORM),
        ("x.apps.acme-paas.net", P.PLATFORM),
        ("deep.x.apps.acme-paas.net", P.PLATFORM),
        ("myapps.acme-paas.net", None),  # a different name, only the same suffix text
        ("foo.localhost", P.RESERVED),
        ("localhost", P.INVALID),
        ("printer.local", P.RESERVED),
        ("example.com", P.RESERVED),
        ("www.example.org", P.RESERVED),
        ("1.0.0.127.in-addr.arpa", P.RESERVED),
        ("db.internal", P.RESERVED),
        ("127.0.0.1", P.IP_LITERAL),
        ("10.1.2.3", P.IP_LITERAL),
        ("::1", P.IP_LITERAL),
        ("[2001:db8::1]", P.IP_LITERAL),
        ("127.1", P.IP_LITERAL),
        ("0x7f.1", P.IP_LITERAL),
        ("", P.INVALID),
        ("single", P.INVALID),
        ("-bad.io", P.INVALID),
        ("bad-.io", P.INVALID),
        ("under_score.io", P.INVALID),
        ("*.wild.io", P.INVALID),
        ("two..dots.io", P.INVALID),
        ("spa ce.io", P.INVALID),
        ("shop.io/path", P.INVALID),
        ("a" * 64 + ".io", P.INVALID),
        (("a" * 60 + ".") * 5 + "io", P.INVALID),  # over 253 characters
        ("shop.123", P.INVALID),
    ],
)
def test_which_names_an_app_may_claim(name: str, problem: DomainProblem | None) -> None:
    refusal = domain_problem(normalize(name), BASE, DEFAULT_RESERVED_DOMAINS)
    assert (refusal.code if refusal else None) == problem


def test_names_are_compared_in_one_form() -> None:
    assert normalize(" Shop.ACME.io. ") == "shop.acme.io"
    assert normalize("bücher.ch") == "xn--bcher-kva.ch"


@pytest.mark.parametrize(
    ("name", "partner"),
    [
        ("shop.io", "www.shop.io"),
        ("www.shop.io", "shop.io"),
        ("www.io", None),
        ("a.b.io", "www.a.b.io"),
    ],
)
def test_www_and_apex_are_partners(name: str, partner: str | None) -> None:
    assert counterpart(name) == partner


OURS = ["203.0.113.7", "2001:db8::7"]


@pytest.mark.parametrize(
    ("lookup", "expected"),
    [
        (Lookup(addresses=("203.0.113.7",)), VerifiedBy.ADDRESS),
        (Lookup(addresses=("203.0.113.7", "2001:db8:0::7")), VerifiedBy.ADDRESS),
        # Half of the answers point elsewhere: someone else serves the name too.
        (Lookup(addresses=("203.0.113.7", "198.51.100.1")), None),
        (Lookup(addresses=("198.51.100.1",)), None),
        (Lookup(txt=("tok-123",)), VerifiedBy.TXT),
        (Lookup(addresses=("198.51.100.1",), txt=("other", " tok-123 ")), VerifiedBy.TXT),
        (Lookup(txt=("tok-1234",)), None),
        (Lookup(error="timeout"), None),
        (Lookup(), None),
    ],
)
def test_what_proves_ownership(lookup: Lookup, expected: VerifiedBy | None) -> None:
    assert verified_by(lookup, OURS, "tok-123") == expected


def test_no_public_address_means_only_the_txt_record_verifies() -> None:
    assert verified_by(Lookup(addresses=("203.0.113.7",)), [], "t") is None
    records = records_to_set("shop.io", [], "t")
    assert [(r.type, r.name, r.value) for r in records] == [
        ("TXT", "_ipaas-challenge.shop.io", "t")
    ]


def test_the_records_to_set_name_each_public_address() -> None:
    records = records_to_set("shop.io", OURS, "t")
    assert [(r.type, r.value) for r in records] == [
        ("A", "203.0.113.7"), ("AAAA", "2001:db8::7"), ("TXT", "t"),
    ]  # fmt: skip


NOW = datetime(2027, 1, 1, tzinfo=UTC)
VALID = CertificateInfo("Pebble Intermediate", NOW - timedelta(days=1), NOW + timedelta(days=89))
OLD = CertificateInfo("Pebble Intermediate", NOW - timedelta(days=91), NOW - timedelta(days=1))


@pytest.mark.parametrize(
    ("verified", "tls", "cert", "failed", "state"),
    [
        (False, True, None, False, CertState.UNVERIFIED),
        (True, False, None, False, CertState.NO_TLS),
        (True, True, None, False, CertState.PENDING),
        (True, True, None, True, CertState.FAILED),
        (True, True, VALID, False, CertState.ISSUED),
        (True, True, VALID, True, CertState.ISSUED),  # a failed renewal: the old one serves
        (True, True, OLD, False, CertState.EXPIRED),
    ],
)
def test_certificate_states(
    verified: bool, tls: bool, cert: CertificateInfo | None, failed: bool, state: CertState
) -> None:
    assert cert_state(verified=verified, tls=tls, certificate=cert, failed=failed, now=NOW) == state
