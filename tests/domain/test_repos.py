"""The one repository URL rule, as create, update and the builder apply it."""

from __future__ import annotations

import pytest

from ipaas.domain.repos import is_local_repo, repo_url_problem


@pytest.mark.parametrize(
    "url",
    [
        "https://github.com/o/r.git",
        "ssh://git@host/o/r",
        "git://host/o/r",
        "git@github.com:o/r.git",
    ],
)
def test_remote_urls_of_allowed_schemes_pass(url: str) -> None:
    assert repo_url_problem(url) is None


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("", "empty"),
        ("-uhttps://x", "'-'"),
        ("https://h/o r", "whitespace"),
        ("ext::sh -c id", "whitespace"),
        ("ext::sh", "transport"),
        ("ftp://h/x", "scheme"),
        ("https://-oProxyCommand=x/y", "host"),
        ("https:///nohost", "host"),
        ("justtext", "https://"),
    ],
)
def test_bad_urls_are_refused_with_a_reason(url: str, why: str) -> None:
    problem = repo_url_problem(url)
    assert problem is not None and why in problem.why and problem.code == "invalid_repo"


@pytest.mark.parametrize("url", ["/srv/app", "file:///srv/app", "./app", "../app"])
def test_local_paths_only_for_admins(url: str) -> None:
    assert is_local_repo(url)
    refused = repo_url_problem(url)
    assert refused is not None and refused.local and refused.code == "local_repo_forbidden"
    assert repo_url_problem(url, allow_local=True) is None


def test_the_operator_narrows_the_schemes() -> None:
    assert repo_url_problem("git://h/x", allowed_schemes=["https"]) is not None
    assert repo_url_problem("git@h:o/r", allowed_schemes=["https"]) is not None
    assert repo_url_problem("https://h/x", allowed_schemes=["https"]) is None
