"""The GitHub provider against the stand-in: listings in order and paginated, ETag
revalidation, the rate limit, files, and clone credentials that really clone."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from ipaas.builds.git import fetch
from ipaas.config import GitHubSettings
from ipaas.providers.base import ProviderError
from ipaas.providers.github import GitHubProvider
from tests.github.conftest import new_login, repo_files
from tests.github_standin import StandInGitHub


def provider(
    github: StandInGitHub, tmp_path: Path, mode: str = "oauth", **extra: object
) -> GitHubProvider:
    settings = GitHubSettings(**github.settings(mode, tmp_path / "key.pem"), **extra)  # type: ignore[arg-type]
    return GitHubProvider(settings, httpx.AsyncClient())


@pytest.fixture
async def oauth(github: StandInGitHub, tmp_path: Path) -> AsyncIterator[GitHubProvider]:
    p = provider(github, tmp_path)
    yield p
    await p.close()


@pytest.fixture(scope="module")
def many(github: StandInGitHub) -> tuple[str, str]:
    """A user with 130 repositories pushed at distinct times (a token of theirs)."""
    login = new_login("many")
    token = github.add_user(login)
    start = datetime(2026, 1, 1, tzinfo=UTC)
    for i in range(130):
        github.add_repo(f"{login}/r{i:03d}", pushed_at=start + timedelta(hours=(i * 37) % 130))
    return login, token


async def test_repos_come_newest_push_first_over_pages(
    oauth: GitHubProvider, github: StandInGitHub, many: tuple[str, str]
) -> None:
    login, token = many
    pages = [await oauth.repos(token, page=n, per_page=50) for n in (1, 2, 3)]
    assert [p.has_next for p in pages] == [True, True, False]
    names = [r.full_name for p in pages for r in p.items]
    assert len(names) == 130 and len(set(names)) == 130
    pushed = [r.pushed_at for p in pages for r in p.items]
    assert pushed == sorted(pushed, reverse=True)  # RFC 3339 in UTC sorts as text
    assert all(n.startswith(f"{login}/") for n in names)


async def test_search_filters_across_every_page(
    oauth: GitHubProvider, many: tuple[str, str]
) -> None:
    _login, token = many
    found = await oauth.repos(token, page=1, per_page=100, search="r12")
    assert sorted(r.full_name.split("/")[1] for r in found.items) == [f"r12{i}" for i in range(10)]
    assert not found.has_next
    pushed = [r.pushed_at for r in found.items]
    assert pushed == sorted(pushed, reverse=True)


async def test_listings_are_cached_then_revalidated_with_etags(
    github: StandInGitHub, tmp_path: Path, many: tuple[str, str]
) -> None:
    _login, token = many
    p = provider(github, tmp_path, cache_ttl_s=1.5)  # room for a loaded machine
    try:
        first = await p.repos(token, page=1, per_page=10)
        sent, remaining = p.api.requests_sent, p.rate_limit(token)
        assert remaining is not None
        again = await p.repos(token, page=1, per_page=10)  # within the TTL: from memory
        assert p.api.requests_sent == sent and again == first
        await asyncio.sleep(1.6)
        before = len(github.requests)
        await p.repos(token, page=1, per_page=10)  # revalidated: a 304, not counted
        assert github.requests[before:][-1][2] == 304
        after = p.rate_limit(token)
        assert after is not None and after.remaining == remaining.remaining  # 304s are free
    finally:
        await p.close()


async def test_exhausted_rate_limit_stops_calls_and_says_until_when(
    github: StandInGitHub, tmp_path: Path
) -> None:
    login = new_login()
    token = github.add_user(login)
    github.add_repo(f"{login}/app", files=None)
    p = provider(github, tmp_path, cache_ttl_s=0)
    try:
        github.remaining[token] = 1
        await p.repos(token, page=1, per_page=10)
        limit = p.rate_limit(token)
        assert limit is not None and limit.remaining == 0 and limit.reset_at > time.time()
        before = len(github.requests)
        with pytest.raises(ProviderError) as refused:
            await p.repo(token, f"{login}/app")
        assert refused.value.code == "github_rate_limited" and refused.value.retry_after_s
        assert len(github.requests) == before  # not even asked
    finally:
        await p.close()


async def test_branches_default_first_then_newest_commit_first_and_a_file(
    oauth: GitHubProvider, github: StandInGitHub
) -> None:
    login = new_login()
    token = github.add_user(login)
    github.add_repo(f"{login}/site", files=repo_files("v1"))
    day = datetime(2026, 3, 1, tzinfo=UTC)
    # Committed in an order that is neither by name nor by creation.
    for branch, days in (("alpha", 2), ("zeta", 5), ("mid", 9)):
        github.push(f"{login}/site", {"b.txt": branch}, branch=branch, at=day + timedelta(days))
    page = await oauth.branches(token, f"{login}/site", page=1, per_page=3)
    assert [(b.name, b.default) for b in page.items] == [
        ("main", True), ("mid", False), ("zeta", False),
    ]  # fmt: skip
    assert page.has_next and page.items[1].committed_at == "2026-03-10T00:00:00Z"
    rest = await oauth.branches(token, f"{login}/site", page=2, per_page=3)
    assert [b.name for b in rest.items] == ["alpha"] and not rest.has_next
    assert await oauth.read_file(token, f"{login}/site", "version.txt", None) == b"v1"
    assert await oauth.read_file(token, f"{login}/site", "b.txt", "zeta") == b"zeta"
    with pytest.raises(ProviderError) as missing:
        await oauth.read_file(token, f"{login}/site", "nope.txt", None)
    assert missing.value.code == "repo_not_found"


@pytest.fixture(scope="module")
def busy(github: StandInGitHub) -> tuple[str, str, list[str]]:
    """A repository with 230 branches committed at distinct times, its default branch
    older than most: (token, repo, every branch newest commit first, the default first)."""
    login = new_login("busy")
    token = github.add_user(login)
    full_name = f"{login}/mono"
    github.add_repo(full_name, files=repo_files())
    start = datetime(2025, 6, 1, tzinfo=UTC)
    github.push(full_name, {"m.txt": "main"}, at=start + timedelta(hours=100))
    dated = {f"b{i:03d}": start + timedelta(hours=(i * 89) % 230, minutes=1) for i in range(230)}
    github.add_branches(full_name, dated)
    newest_first = sorted(dated, key=lambda b: dated[b], reverse=True)
    return token, full_name, ["main", *newest_first]


async def test_branches_page_by_commit_date_over_graphql_pages(
    github: StandInGitHub, tmp_path: Path, busy: tuple[str, str, list[str]]
) -> None:
    token, full_name, expected = busy
    p = provider(github, tmp_path)
    try:
        before = len(github.requests)
        first = await p.branches(token, full_name, page=1, per_page=50)
        asked = [r for r in github.requests[before:] if r[1] == "/api/graphql"]
        assert len(asked) == 1  # a page of 50 needs one query of 100 refs, not all 231
        pages = [first] + [await p.branches(token, full_name, page=n, per_page=50)
                           for n in (2, 3, 4, 5)]  # fmt: skip
        assert [pg.has_next for pg in pages] == [True, True, True, True, False]
        listed = [b.name for pg in pages for b in pg.items]
        assert listed == expected  # 231: the default first, then every other by date
        dates = [b.committed_at for pg in pages for b in pg.items if not b.default]
        assert dates == sorted(dates, reverse=True)
        asked = [r for r in github.requests[before:] if r[1] == "/api/graphql"]
        assert len(asked) == 3  # 231 refs: 3 queries, each answer reused while it is fresh
        graphql = p.api.rate_limit(token, "graphql")
        assert graphql is not None and graphql.remaining == github.rate_limit - 3
    finally:
        await p.close()


async def test_branches_of_a_repo_the_token_cannot_see_is_not_found(
    oauth: GitHubProvider, github: StandInGitHub, busy: tuple[str, str, list[str]]
) -> None:
    _token, full_name, _ = busy
    stranger = github.add_user(new_login())
    with pytest.raises(ProviderError) as refused:
        await oauth.branches(stranger, full_name, page=1, per_page=10)
    assert refused.value.code == "repo_not_found"


async def test_a_used_up_graphql_limit_is_reported_and_stops_queries(
    github: StandInGitHub, tmp_path: Path, busy: tuple[str, str, list[str]]
) -> None:
    token, full_name, _ = busy
    reader = github.token_for(full_name.split("/")[0])
    github.graphql_remaining[reader] = 0
    p = provider(github, tmp_path, cache_ttl_s=0)
    try:
        with pytest.raises(ProviderError) as refused:
            await p.branches(reader, full_name, page=1, per_page=10)
        assert refused.value.code == "github_rate_limited"
        assert refused.value.retry_after_s and refused.value.retry_after_s > 0
        before = len(github.requests)
        with pytest.raises(ProviderError):
            await p.branches(reader, full_name, page=1, per_page=10)
        assert len(github.requests) == before  # not even asked
        await p.repos(reader, page=1, per_page=10)  # REST has a limit of its own
    finally:
        await p.close()


async def test_another_users_private_repo_is_not_found(
    oauth: GitHubProvider, github: StandInGitHub
) -> None:
    owner, stranger = new_login(), new_login()
    github.add_user(owner)
    token = github.add_user(stranger)
    github.add_repo(f"{owner}/secret")
    with pytest.raises(ProviderError) as refused:
        await oauth.repo(token, f"{owner}/secret")
    assert refused.value.code == "repo_not_found"


async def test_app_mode_mints_an_installation_token_that_clones(
    github: StandInGitHub, tmp_path: Path
) -> None:
    login = new_login()
    github.add_user(login)
    github.add_repo(f"{login}/private", files=repo_files("from-app"))
    p = provider(github, tmp_path, "app")
    try:
        with pytest.raises(ProviderError) as not_installed:
            await p.clone_credentials(None, f"{login}/private")
        assert not_installed.value.code == "github_app_not_installed"
        github.install_app(login, [f"{login}/private"])
        credentials = await p.clone_credentials(None, f"{login}/private")
        assert credentials.password.startswith("ghs_")
        expiry = github.installation_tokens[credentials.password][1]
        assert 3500 < expiry - time.time() <= 3600  # one hour, as GitHub's
        url = p.clone_url(f"{login}/private")
        assert "ghs_" not in url
        dest = tmp_path / "checkout"
        schemes = ("http",)
        with pytest.raises(Exception, match="repo_not_found|could not read|Authentication"):
            await fetch(url, None, None, tmp_path / "anon", timeout_s=30, max_bytes=10**7,
                        allowed_schemes=schemes)  # fmt: skip
        await fetch(url, None, None, dest, timeout_s=30, max_bytes=10**7,
                    allowed_schemes=schemes, credentials=credentials)  # fmt: skip
        assert (dest / "version.txt").read_text() == "from-app"
    finally:
        await p.close()


async def test_a_forged_app_jwt_is_refused(github: StandInGitHub, tmp_path: Path) -> None:
    """The stand-in checks the App's signature, so the test above proves ours is right."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    (tmp_path / "other.pem").write_bytes(
        other.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )  # fmt: skip
    login = new_login()
    github.add_user(login)
    github.add_repo(f"{login}/x")
    github.install_app(login, [f"{login}/x"])
    settings = GitHubSettings(
        **{
            **github.settings("app", tmp_path / "key.pem"),
            "private_key_file": tmp_path / "other.pem",
        }
    )
    p = GitHubProvider(settings, httpx.AsyncClient())
    try:
        with pytest.raises(ProviderError) as refused:
            await p.clone_credentials(None, f"{login}/x")
        assert refused.value.code == "github_unauthorized"
    finally:
        await p.close()
