"""A stand-in GitHub for tests: github.com cannot be reached from the test machines.

A real HTTP server on loopback speaking the parts of GitHub's REST API and OAuth web flow that
ipaas uses, as GitHub documents them, laid out like GitHub Enterprise Server (the REST API
under `/api/v3`, the OAuth pages and git under the root):

- OAuth: `/login/oauth/authorize` (the signed-in browser user approves at once) and
  `/login/oauth/access_token` (single-use codes, bound to the client and redirect URI);
- `/user`, `/user/orgs`, `/user/repos` (sort, direction, per_page, page), `/repos/{o}/{r}`,
  `/repos/{o}/{r}/branches`, `/repos/{o}/{r}/contents/{path}`, `/rate_limit`;
- GraphQL at `/api/graphql` (tests/github_standin_graphql.py: a real executor over the part of
  GitHub's schema used: a repository's refs ordered by commit date, cursor-paginated), with its
  own rate limit;
- GitHub App: `/repos/{o}/{r}/installation` and `/app/installations/{id}/access_tokens`
  (both demanding an RS256 JWT signed by the App's private key, issued by the App, at most
  ten minutes long; each App sees its own installations only), `/installation/repositories`
  (an installation token);
- the App manifest flow: `/settings/apps/new` and `/organizations/{org}/settings/apps/new`
  take the form field `manifest` from the signed-in browser user (an org member for the org
  variant), make the App and redirect to its `redirect_url` with a code and the `state`;
  `POST /app-manifests/{code}/conversions` (no credentials; the code once, within the hour)
  answers 201 with the App's id, slug, client id and secret, webhook secret and PEM key;
- pagination by `Link` headers, `ETag`/`If-None-Match` answered 304 without counting against
  the rate limit, `X-RateLimit-*` headers and 403 once the limit is used up;
- the repositories themselves over smart HTTP with `git http-backend`, for a token that may
  read them (Basic auth, the token as the password), as GitHub's git host does;
- `deliver()` posts webhook deliveries signed with `X-Hub-Signature-256`.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import http.server
import json
import os
import secrets
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from ipaas.domain.pushes import sign
from tests.builds.conftest import GIT_ID, commit_all, git, http_backend, make_repo
from tests.github_standin_graphql import execute as graphql_execute

API = "/api/v3"
GRAPHQL = "/api/graphql"


@dataclass
class StandInUser:
    id: int
    login: str
    email: str | None = None
    orgs: list[str] = field(default_factory=list)


@dataclass
class StandInRepo:
    id: int
    owner: str
    name: str
    private: bool
    pushed_at: datetime
    default_branch: str = "main"
    collaborators: set[str] = field(default_factory=set)
    path: Path | None = None  # a git working tree, for repositories that are cloned

    @property
    def full_name(self) -> str:
        return f"{self.owner}/{self.name}"


@dataclass
class Installation:
    id: int
    account: str
    repos: set[str]  # full names
    app_id: str = ""  # the GitHub App installed


def _new_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@dataclass
class StandInApp:
    """A GitHub App: its identity, OAuth client, webhook secret and private key."""

    id: str
    slug: str
    name: str
    owner: str
    client_id: str
    client_secret: str
    private_key: rsa.RSAPrivateKey = field(default_factory=_new_key, repr=False)
    webhook_secret: str | None = None
    manifest: dict[str, Any] = field(default_factory=dict)

    def pem(self) -> str:
        """As GitHub hands the key over: PEM, PKCS#1 ("BEGIN RSA PRIVATE KEY")."""
        return self.private_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        ).decode()


def _iso(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _commit(path: Path, message: str, at: datetime | None) -> str:
    """Commit everything in the working tree, dated `at` (author and committer) when given."""
    if at is None:
        return commit_all(path, message)
    stamp = f"{int(at.timestamp())} +0000"
    env = {**os.environ, "GIT_AUTHOR_DATE": stamp, "GIT_COMMITTER_DATE": stamp}
    git(path, "add", "-A")
    subprocess.run(
        ["git", *GIT_ID, "commit", "-q", "-m", message], cwd=path, env=env, check=True,
        capture_output=True,
    )  # fmt: skip
    return git(path, "rev-parse", "HEAD")


class StandInGitHub:
    """The state of the stand-in and the helpers tests drive it with."""

    def __init__(self, root: Path, port: int) -> None:
        self.root = root
        self.port = port
        self._ids = iter(range(1000, 10**6))
        # The App (and OAuth client) tests configure by hand; the manifest flow makes more.
        default = StandInApp(
            str(100000 + secrets.randbelow(1000)), "ipaas-standin", "ipaas stand-in", "ipaas",
            "Iv1.standin" + secrets.token_hex(4), secrets.token_hex(20),
        )  # fmt: skip
        self.apps: dict[str, StandInApp] = {default.id: default}
        self.client_id, self.client_secret = default.client_id, default.client_secret
        self.app_id, self.private_key = default.id, default.private_key
        self.manifest_codes: dict[str, tuple[str, float]] = {}  # code -> (App id, expiry)
        self.users: dict[str, StandInUser] = {}
        self.tokens: dict[str, str] = {}  # OAuth token -> login
        self.repos: dict[str, StandInRepo] = {}
        self.installations: dict[int, Installation] = {}
        self.installation_tokens: dict[str, tuple[int, float]] = {}  # -> (installation, expiry)
        self.codes: dict[str, tuple[str, str, str]] = {}  # code -> (login, client, redirect)
        self.browser_user: str | None = None  # who is signed in to GitHub in "the browser"
        self.rate_limit = 5000
        self.remaining: dict[str, int] = {}  # per token (REST, the "core" resource)
        self.graphql_remaining: dict[str, int] = {}  # per token (GraphQL, a point a query)
        self.reset_at = int(time.time()) + 3600
        self.requests: list[tuple[str, str, int]] = []  # (method, path, status)
        self.git_hold: threading.Event | None = None  # set: git requests wait for it
        self.git_waiting = threading.Event()
        self.lock = threading.Lock()

    # --- URLs and keys --------------------------------------------------------------------
    @property
    def web_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def api_url(self) -> str:
        return self.web_url + API

    def private_key_pem(self) -> bytes:
        return self.private_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )

    def settings(self, mode: str = "oauth", key_file: Path | None = None) -> dict[str, Any]:
        """The `github` settings of a platform using this stand-in."""
        values: dict[str, Any] = {
            "mode": mode,
            "client_id": self.client_id,
            "client_secret": self.client_secret,
            "api_url": self.api_url,
            "web_url": self.web_url,
        }
        if mode == "app":
            assert key_file is not None
            key_file.write_bytes(self.private_key_pem())
            values |= {"app_id": self.app_id, "private_key_file": str(key_file)}
        return values

    # --- what tests set up ----------------------------------------------------------------
    def add_user(self, login: str, orgs: list[str] | None = None) -> str:
        """A GitHub user; returns an OAuth token of theirs."""
        self.users[login] = StandInUser(
            next(self._ids), login, f"{login}@users.invalid", orgs or []
        )
        return self.token_for(login)

    def token_for(self, login: str) -> str:
        token = "gho_" + secrets.token_urlsafe(27)
        self.tokens[token] = login
        return token

    def add_repo(
        self,
        full_name: str,
        *,
        private: bool = True,
        pushed_at: datetime | None = None,
        files: dict[str, str] | None = None,
        collaborators: tuple[str, ...] = (),
    ) -> StandInRepo:
        """A repository; with files it is a real git repository that can be cloned."""
        owner, name = full_name.split("/")
        repo = StandInRepo(
            next(self._ids), owner, name, private, pushed_at or datetime.now(UTC),
            collaborators=set(collaborators),
        )  # fmt: skip
        if files is not None:
            repo.path = make_repo(self.root / owner / f"{name}.git", files=files)
        self.repos[full_name] = repo
        return repo

    def push(
        self,
        full_name: str,
        files: dict[str, str],
        branch: str = "main",
        at: datetime | None = None,
    ) -> dict[str, Any]:
        """Commit files on a branch (dated `at`, else now); returns the `push` event payload
        GitHub would send."""
        repo = self.repos[full_name]
        assert repo.path is not None
        before = git(repo.path, "rev-parse", "HEAD")
        current = git(repo.path, "rev-parse", "--abbrev-ref", "HEAD")
        if branch != current:
            exists = git(repo.path, "branch", "--list", branch)
            git(repo.path, "checkout", "-q", *([] if exists else ["-b"]), branch)
        for name, text in files.items():
            (repo.path / name).parent.mkdir(parents=True, exist_ok=True)
            (repo.path / name).write_text(text)
        after = _commit(repo.path, f"change {', '.join(files)}", at)
        if branch != current:
            git(repo.path, "checkout", "-q", current)
        repo.pushed_at = datetime.now(UTC)
        return self.push_payload(repo, branch, before, after, sorted(files))

    def add_branches(self, full_name: str, dated: dict[str, datetime]) -> None:
        """Many branches at once, each one commit on top of the default branch, committed at
        its date (one `git fast-import`)."""
        repo = self.repos[full_name]
        assert repo.path is not None
        base = git(repo.path, "rev-parse", repo.default_branch)
        stream = []
        for name, at in dated.items():
            message = f"work on {name}\n"
            stream.append(
                f"commit refs/heads/{name}\n"
                f"committer ipaas-test <test@ipaas.invalid> {int(at.timestamp())} +0000\n"
                f"data {len(message)}\n{message}from {base}\n\n"
            )
        subprocess.run(
            ["git", "fast-import", "--quiet"], cwd=repo.path, input="".join(stream).encode(),
            check=True, capture_output=True,
        )  # fmt: skip

    def push_payload(
        self, repo: StandInRepo, branch: str, before: str, after: str, modified: list[str]
    ) -> dict[str, Any]:
        return {
            "ref": f"refs/heads/{branch}",
            "before": before,
            "after": after,
            "created": False,
            "deleted": False,
            "forced": False,
            "compare": f"{self.web_url}/{repo.full_name}/compare/{before[:12]}...{after[:12]}",
            "commits": [
                {"id": after, "message": "change", "added": [], "removed": [], "modified": modified}
            ],
            "head_commit": {"id": after, "added": [], "removed": [], "modified": modified},
            "repository": self._repo_json(repo),
            "pusher": {"name": repo.owner},
            "sender": {"login": repo.owner},
        }

    def install_app(self, account: str, repos: list[str], app_id: str | None = None) -> int:
        """Install an App (the hand-configured one unless named) on an account's repos."""
        installation = Installation(next(self._ids), account, set(repos), app_id or self.app_id)
        self.installations[installation.id] = installation
        return installation.id

    def deliver(
        self, url: str, event: str, payload: dict[str, Any], secret: str, delivery: str = ""
    ) -> httpx.Response:
        """POST a webhook delivery as GitHub does (signed with the hook's secret)."""
        body = json.dumps(payload).encode()
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "GitHub-Hookshot/standin",
            "X-GitHub-Event": event,
            "X-GitHub-Delivery": delivery or str(uuid.uuid4()),
            "X-GitHub-Hook-ID": "1",
            "X-Hub-Signature-256": sign(secret, body),
        }
        return httpx.post(url, content=body, headers=headers, timeout=30)

    def oauth_clients(self) -> dict[str, str]:
        """client id -> secret of every App (each GitHub App is an OAuth client too)."""
        return {app.client_id: app.client_secret for app in self.apps.values()}

    def make_app(self, manifest: dict[str, Any], owner: str) -> StandInApp | str:
        """An App from a manifest, as GitHub makes it once the user confirms; or why not."""
        url, hook = manifest.get("url"), manifest.get("hook_attributes")
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            return "url is required and must be an http(s) URL"
        if hook is not None and not (isinstance(hook, dict) and isinstance(hook.get("url"), str)):
            return "hook_attributes needs a url"
        name = str(manifest.get("name") or f"app-{next(self._ids)}")
        if len(name) > 34:
            return "Name is too long (maximum is 34 characters)"
        if any(a.name.lower() == name.lower() for a in self.apps.values()):
            return "Name is already in use"
        slug = "".join(c if c.isalnum() else "-" for c in name.lower()).strip("-")
        active = isinstance(hook, dict) and hook.get("active", True)
        app = StandInApp(
            str(next(self._ids)), slug, name, owner, "Iv1." + secrets.token_hex(8),
            secrets.token_hex(20), webhook_secret=secrets.token_hex(20) if active else None,
            manifest=manifest,
        )  # fmt: skip
        self.apps[app.id] = app
        return app

    # --- who may see what -------------------------------------------------------------------
    def can_read(self, login: str, repo: StandInRepo) -> bool:
        user = self.users[login]
        return (
            not repo.private
            or repo.owner == login
            or login in repo.collaborators
            or repo.owner in user.orgs
        )

    def _repo_json(self, repo: StandInRepo) -> dict[str, Any]:
        return {
            "id": repo.id,
            "name": repo.name,
            "full_name": repo.full_name,
            "private": repo.private,
            "owner": {"login": repo.owner, "id": 1},
            "html_url": f"{self.web_url}/{repo.full_name}",
            "clone_url": f"{self.web_url}/{repo.full_name}.git",
            "default_branch": repo.default_branch,
            "pushed_at": _iso(repo.pushed_at),
            "updated_at": _iso(repo.pushed_at),
            "description": None,
        }

    def _branches(self, repo: StandInRepo) -> list[dict[str, Any]]:
        if repo.path is None:
            return [{"name": repo.default_branch, "commit": {"sha": "0" * 40}, "protected": False}]
        out = git(
            repo.path, "for-each-ref", "--format=%(refname:short) %(objectname)", "refs/heads"
        )
        pairs = sorted(line.split() for line in out.splitlines())
        return [{"name": n, "commit": {"sha": sha}, "protected": False} for n, sha in pairs]


class _Handler(http.server.BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - base signature
        pass

    @property
    def hub(self) -> StandInGitHub:
        return self.server.hub

    def do_GET(self) -> None:
        self._route()

    def do_POST(self) -> None:
        self._route()

    # --- dispatch -----------------------------------------------------------------------------
    def _route(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        parts = urlsplit(self.path)
        path, query = parts.path, parse_qs(parts.query)
        if ".git/" in path:
            self._git(body)
        elif path == "/login/oauth/authorize":
            self._authorize(query)
        elif path == "/login/oauth/access_token":
            self._access_token(body)
        elif path.endswith("/settings/apps/new") and self.command == "POST":
            self._new_app_from_manifest(path, query, body)
        elif path == GRAPHQL and self.command == "POST":
            self._graphql(body)
        elif path.startswith(API + "/"):
            self._api(path.removeprefix(API), query)
        else:
            self._json(404, {"message": "Not Found"})

    def _send(self, status: int, body: bytes, headers: dict[str, str]) -> None:
        self.hub.requests.append((self.command, self.path, status))
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _json(self, status: int, data: Any, headers: dict[str, str] | None = None) -> None:
        payload = json.dumps(data).encode()
        self._send(status, payload, {"Content-Type": "application/json", **(headers or {})})

    # --- OAuth web flow -----------------------------------------------------------------------
    def _authorize(self, query: dict[str, list[str]]) -> None:
        hub = self.hub
        client = query.get("client_id", [""])[0]
        redirect = query.get("redirect_uri", [""])[0]
        if client not in hub.oauth_clients() or hub.browser_user is None or not redirect:
            self._json(400, {"message": "unknown client or nobody signed in"})
            return
        code = secrets.token_hex(10)
        hub.codes[code] = (hub.browser_user, client, redirect)
        state = query.get("state", [""])[0]
        location = f"{redirect}?{urlencode({'code': code, 'state': state})}"
        self._send(302, b"", {"Location": location})

    def _access_token(self, body: bytes) -> None:
        hub = self.hub
        if self.headers.get("Content-Type", "").startswith("application/json"):
            form = {k: str(v) for k, v in json.loads(body or b"{}").items()}
        else:
            form = {k: v[0] for k, v in parse_qs(body.decode()).items()}
        known = hub.oauth_clients().get(form.get("client_id", ""))
        if known is None or not secrets.compare_digest(form.get("client_secret", ""), known):
            self._json(200, {"error": "incorrect_client_credentials"})
            return
        found = hub.codes.pop(form.get("code", ""), None)  # single use
        if found is None or found[2] != form.get("redirect_uri", found[2]):
            self._json(200, {"error": "bad_verification_code"})
            return
        token = hub.token_for(found[0])
        self._json(200, {"access_token": token, "token_type": "bearer", "scope": "repo,read:org"})

    # --- REST API -----------------------------------------------------------------------------
    def _token(self) -> str | None:
        scheme, _, value = self.headers.get("Authorization", "").partition(" ")
        return value.strip() if scheme.lower() in ("bearer", "token") else None

    def _api(self, path: str, query: dict[str, list[str]]) -> None:
        if path.startswith("/app-manifests/") and path.endswith("/conversions"):
            self._conversion(path.split("/")[2])
            return
        if path.startswith("/app/") or path.endswith("/installation"):
            self._as_app(path)
            return
        token = self._token()
        hub = self.hub
        if path == "/installation/repositories":
            self._installation_repos(token)
            return
        login = hub.tokens.get(token or "")
        if login is None:
            self._json(401, {"message": "Bad credentials"})
            return
        if path == "/rate_limit":
            self._json(200, self._rate_body(token or ""), self._rate_headers(token or ""))
            return
        if hub.remaining.get(token or "", hub.rate_limit) <= 0:
            message = "API rate limit exceeded for user."
            self._json(403, {"message": message}, self._rate_headers(token or ""))
            return
        status, data, extra = self._resource(login, path, query)
        self._answer(token or "", status, data, extra)

    def _answer(self, token: str, status: int, data: Any, extra: dict[str, str]) -> None:
        """With an ETag; a matching If-None-Match gets 304, which costs no rate limit."""
        payload = json.dumps(data).encode()
        etag = 'W/"' + hashlib.sha256(payload).hexdigest()[:32] + '"'
        if status == 200 and self.headers.get("If-None-Match") == etag:
            self._send(304, b"", {"ETag": etag, **self._rate_headers(token)})
            return
        with self.hub.lock:
            left = self.hub.remaining.get(token, self.hub.rate_limit)
            self.hub.remaining[token] = left - 1
        headers = {"Content-Type": "application/json", "ETag": etag, **extra}
        self._send(status, payload, {**headers, **self._rate_headers(token)})

    def _rate_headers(self, token: str, resource: str = "core") -> dict[str, str]:
        budget = self.hub.remaining if resource == "core" else self.hub.graphql_remaining
        left = max(budget.get(token, self.hub.rate_limit), 0)
        return {
            "X-RateLimit-Limit": str(self.hub.rate_limit),
            "X-RateLimit-Remaining": str(left),
            "X-RateLimit-Used": str(self.hub.rate_limit - left),
            "X-RateLimit-Reset": str(self.hub.reset_at),
            "X-RateLimit-Resource": resource,
        }

    # --- GraphQL --------------------------------------------------------------------------------
    def _graphql(self, body: bytes) -> None:
        """POST /api/graphql: its own rate limit (a point per query here), no ETags."""
        hub, token = self.hub, self._token() or ""
        login = hub.tokens.get(token)
        if login is None:
            message = "This endpoint requires you to be authenticated."
            self._json(401, {"message": message})
            return
        with hub.lock:
            left = hub.graphql_remaining.get(token, hub.rate_limit)
            if left > 0:
                hub.graphql_remaining[token] = left - 1
        headers = self._rate_headers(token, "graphql")
        if left <= 0:
            user_id = hub.users[login].id
            error = {
                "type": "RATE_LIMITED",
                "message": f"API rate limit exceeded for user ID {user_id}.",
            }
            self._json(200, {"errors": [error]}, headers)
            return
        try:
            request = json.loads(body or b"{}")
        except ValueError:
            self._json(400, {"message": "Problems parsing JSON"}, headers)
            return
        limit = {
            "limit": hub.rate_limit, "remaining": left - 1, "used": hub.rate_limit - left + 1,
            "resetAt": _iso(datetime.fromtimestamp(hub.reset_at, UTC)),
        }  # fmt: skip
        self._json(200, graphql_execute(hub, login, request, limit), headers)

    def _rate_body(self, token: str) -> dict[str, Any]:
        h = self._rate_headers(token)
        core = {
            "limit": int(h["X-RateLimit-Limit"]),
            "remaining": int(h["X-RateLimit-Remaining"]),
            "reset": int(h["X-RateLimit-Reset"]),
            "used": int(h["X-RateLimit-Used"]),
        }
        return {"resources": {"core": core}, "rate": core}

    def _resource(
        self, login: str, path: str, query: dict[str, list[str]]
    ) -> tuple[int, Any, dict[str, str]]:
        hub = self.hub
        user = hub.users[login]
        if path == "/user":
            return 200, {"login": login, "id": user.id, "name": login, "email": user.email}, {}
        if path == "/user/orgs":
            return 200, [{"login": org, "id": i} for i, org in enumerate(user.orgs)], {}
        if path == "/user/repos":
            return self._user_repos(login, query)
        segments = path.strip("/").split("/")
        if len(segments) < 3 or segments[0] != "repos":
            return 404, {"message": "Not Found"}, {}
        repo = hub.repos.get(f"{segments[1]}/{segments[2]}")
        if repo is None or not hub.can_read(login, repo):
            return 404, {"message": "Not Found"}, {}
        rest = segments[3:]
        if not rest:
            return 200, hub._repo_json(repo), {}
        if rest == ["branches"]:
            return self._paged(hub._branches(repo), query, path)
        if rest[0] == "contents":
            return self._contents(repo, "/".join(rest[1:]), query)
        return 404, {"message": "Not Found"}, {}

    def _user_repos(
        self, login: str, query: dict[str, list[str]]
    ) -> tuple[int, Any, dict[str, str]]:
        hub = self.hub
        mine = [r for r in hub.repos.values() if hub.can_read(login, r) and (
            r.owner == login or login in r.collaborators or r.owner in hub.users[login].orgs
        )]  # fmt: skip
        if query.get("sort", ["full_name"])[0] == "pushed":
            descending = query.get("direction", ["desc"])[0] == "desc"
            mine.sort(key=lambda r: r.pushed_at, reverse=descending)
        else:
            mine.sort(key=lambda r: r.full_name.lower())
        return self._paged([hub._repo_json(r) for r in mine], query, "/user/repos")

    def _paged(
        self, items: list[Any], query: dict[str, list[str]], path: str
    ) -> tuple[int, Any, dict[str, str]]:
        per_page = min(int(query.get("per_page", ["30"])[0]), 100)
        page = max(int(query.get("page", ["1"])[0]), 1)
        last = max((len(items) + per_page - 1) // per_page, 1)
        chunk = items[(page - 1) * per_page : page * per_page]
        keep = {k: v[0] for k, v in query.items() if k not in ("page",)}

        def link(n: int, rel: str) -> str:
            return f'<{self.hub.api_url}{path}?{urlencode({**keep, "page": n})}>; rel="{rel}"'

        rels = []
        if page < last:
            rels += [link(page + 1, "next"), link(last, "last")]
        if page > 1:
            rels += [link(1, "first"), link(page - 1, "prev")]
        return 200, chunk, ({"Link": ", ".join(rels)} if rels else {})

    def _contents(
        self, repo: StandInRepo, file_path: str, query: dict[str, list[str]]
    ) -> tuple[int, Any, dict[str, str]]:
        if repo.path is None:
            return 404, {"message": "Not Found"}, {}
        ref = query.get("ref", [repo.default_branch])[0]
        shown = subprocess.run(
            ["git", "show", f"{ref}:{file_path}"], cwd=repo.path, capture_output=True
        )
        if shown.returncode != 0:
            return 404, {"message": "Not Found"}, {}
        content = base64.b64encode(shown.stdout).decode()
        return 200, {
            "type": "file", "encoding": "base64", "name": file_path.rsplit("/", 1)[-1],
            "path": file_path, "size": len(shown.stdout), "content": content,
            "sha": hashlib.sha1(shown.stdout).hexdigest(),
        }, {}  # fmt: skip

    # --- the GitHub App manifest flow ----------------------------------------------------------
    def _new_app_from_manifest(self, path: str, query: dict[str, list[str]], body: bytes) -> None:
        """POST /settings/apps/new (or /organizations/{org}/settings/apps/new) with the form
        field `manifest`: GitHub shows the signed-in user the App, they confirm (at once
        here), and GitHub makes it and redirects to its `redirect_url` with a code (one hour,
        single use) and the `state` it was given."""
        hub = self.hub
        login = hub.browser_user
        segments = path.strip("/").split("/")
        owner = login
        if segments[0] == "organizations":
            owner = segments[1]
            if login is None or owner not in hub.users[login].orgs:
                self._send(404, b"Not Found", {"Content-Type": "text/html"})
                return
        if login is None or owner is None:
            self._send(302, b"", {"Location": f"{hub.web_url}/login"})
            return
        form = {k: v[0] for k, v in parse_qs(body.decode()).items()}
        try:
            manifest = json.loads(form["manifest"])
            assert isinstance(manifest, dict)
        except (KeyError, ValueError, AssertionError):
            self._send(422, b"Invalid GitHub App configuration", {"Content-Type": "text/html"})
            return
        made = hub.make_app(manifest, owner)
        if isinstance(made, str):
            self._send(422, made.encode(), {"Content-Type": "text/html"})
            return
        code = secrets.token_hex(20)
        hub.manifest_codes[code] = (made.id, time.time() + 3600)
        back = {"code": code, **({"state": query["state"][0]} if "state" in query else {})}
        redirect = str(manifest.get("redirect_url") or f"{hub.web_url}/apps/{made.slug}")
        self._send(302, b"", {"Location": f"{redirect}?{urlencode(back)}"})

    def _conversion(self, code: str) -> None:
        """POST /app-manifests/{code}/conversions: no credentials; the code once, within the
        hour; 201 with the App and, this once, its secrets and private key."""
        hub = self.hub
        found = hub.manifest_codes.pop(code, None) if self.command == "POST" else None
        if found is None or found[1] < time.time():
            self._json(404, {"message": "Not Found"})
            return
        app = hub.apps[found[0]]
        now = _iso(datetime.now(UTC))
        self._json(201, {
            "id": int(app.id), "slug": app.slug, "node_id": f"A_{app.id}", "name": app.name,
            "owner": {"login": app.owner, "id": 1, "type": "User"},
            "description": app.manifest.get("description", ""),
            "external_url": app.manifest.get("url"),
            "html_url": f"{hub.web_url}/apps/{app.slug}",
            "created_at": now, "updated_at": now,
            "permissions": app.manifest.get("default_permissions", {}),
            "events": app.manifest.get("default_events", []),
            "client_id": app.client_id, "client_secret": app.client_secret,
            "webhook_secret": app.webhook_secret, "pem": app.pem(),
        })  # fmt: skip

    # --- GitHub App -----------------------------------------------------------------------------
    def _jwt_app(self) -> StandInApp | None:
        """The App whose JWT this is: issued by it (`iss`), signed with its key, at most ten
        minutes long (GitHub refuses longer ones)."""
        token = self._token()
        if token is None:
            return None
        try:
            issuer = str(jwt.decode(token, options={"verify_signature": False}).get("iss"))
            app = self.hub.apps.get(issuer)
            if app is None:
                return None
            claims = jwt.decode(
                token, app.private_key.public_key(), algorithms=["RS256"],
                options={"require": ["iat", "exp", "iss"]},
            )  # fmt: skip
        except jwt.PyJWTError:
            return None
        return app if claims["exp"] - claims["iat"] <= 660 else None

    def _as_app(self, path: str) -> None:
        hub = self.hub
        app = self._jwt_app()
        if app is None:
            self._json(401, {"message": "A JSON web token could not be decoded"})
            return
        segments = path.strip("/").split("/")
        if path.endswith("/installation") and segments[0] == "repos":
            full_name = f"{segments[1]}/{segments[2]}"
            found = [
                i for i in hub.installations.values()
                if full_name in i.repos and i.app_id == app.id
            ]  # fmt: skip
            if not found:
                self._json(404, {"message": "Not Found"})
                return
            self._json(200, {"id": found[0].id, "account": {"login": found[0].account}})
            return
        if (
            len(segments) == 4
            and segments[:2] == ["app", "installations"]
            and segments[3] == "access_tokens"
        ):
            installation = hub.installations.get(int(segments[2]) if segments[2].isdigit() else -1)
            if installation is None or installation.app_id != app.id or self.command != "POST":
                self._json(404, {"message": "Not Found"})
                return
            token = "ghs_" + secrets.token_urlsafe(27)
            expires = datetime.now(UTC) + timedelta(hours=1)
            hub.installation_tokens[token] = (installation.id, expires.timestamp())
            self._json(201, {
                "token": token, "expires_at": _iso(expires),
                "permissions": {"contents": "read", "metadata": "read"},
                "repository_selection": "selected",
            })  # fmt: skip
            return
        self._json(404, {"message": "Not Found"})

    def _installation_repos(self, token: str | None) -> None:
        found = self.hub.installation_tokens.get(token or "")
        if found is None or found[1] < time.time():
            self._json(401, {"message": "Bad credentials"})
            return
        installation = self.hub.installations[found[0]]
        repos = [self.hub._repo_json(self.hub.repos[n]) for n in sorted(installation.repos)]
        self._json(200, {"total_count": len(repos), "repositories": repos})

    # --- git over smart HTTP --------------------------------------------------------------------
    def _git_reader(self) -> str | None:
        """Who the Basic auth password (a token) speaks for: a user login, or installation:N."""
        scheme, _, encoded = self.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "basic":
            return None
        _user, _, token = base64.b64decode(encoded).decode().partition(":")
        if token in self.hub.tokens:
            return self.hub.tokens[token]
        found = self.hub.installation_tokens.get(token)
        if found is not None and found[1] > time.time():
            return f"installation:{found[0]}"
        return None

    def _may_clone(self, reader: str, repo: StandInRepo) -> bool:
        if reader.startswith("installation:"):
            installation = self.hub.installations[int(reader.split(":")[1])]
            return repo.full_name in installation.repos
        return self.hub.can_read(reader, repo)

    def _git(self, body: bytes) -> None:
        hub = self.hub
        owner, name = self.path.lstrip("/").split("/")[:2]
        repo = hub.repos.get(f"{owner}/{name.removesuffix('.git')}")
        reader = self._git_reader()
        if repo is None or repo.path is None or reader is None or not self._may_clone(reader, repo):
            # GitHub asks for credentials rather than telling whether a private repo exists.
            self._send(401, b"", {"WWW-Authenticate": 'Basic realm="GitHub"'})
            return
        if hub.git_hold is not None:
            hub.git_waiting.set()
            hub.git_hold.wait(30)
        status, headers, payload = http_backend(
            hub.root, self.command, self.path, self.headers, body
        )
        self._send(status, payload, dict(headers))


class _Server(http.server.ThreadingHTTPServer):
    hub: StandInGitHub
    daemon_threads = True


@contextlib.contextmanager
def standin_github(root: Path) -> Iterator[StandInGitHub]:
    """The stand-in, listening on a free loopback port until the block ends."""
    server = _Server(("127.0.0.1", 0), _Handler)
    server.hub = StandInGitHub(root, server.server_address[1])
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.hub
    finally:
        server.shutdown()
        server.server_close()
