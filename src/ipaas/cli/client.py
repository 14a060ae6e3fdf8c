"""The HTTP side of the user CLI: the saved login, the API client, problem details, SSE.

Nothing here imports server code: the CLI talks to ipaas over HTTP only, so it works against
any ipaas server, local or remote.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import tempfile
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import httpx

API = "/api/v1"
APPS = f"{API}/applications"
_APP_ID = re.compile(r"^[0-9a-f]{32}$")
DEFAULT_TIMEOUT_S = 30.0


class ApiError(Exception):
    """An RFC 9457 problem from the server (or a client-side one shaped the same way)."""

    def __init__(self, status: int, code: str, detail: str) -> None:
        super().__init__(f"{detail} ({code})")
        self.status = status
        self.code = code
        self.detail = detail


class NotLoggedIn(Exception):
    pass


# --- the saved login ------------------------------------------------------------------------


@dataclass
class CliConfig:
    url: str
    token: str
    username: str = ""
    token_id: str = ""  # lets `logout` delete exactly the token `login` made


def config_path() -> Path:
    explicit = os.environ.get("IPAAS_CLI_CONFIG")
    if explicit:
        return Path(explicit).expanduser()
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "ipaas" / "cli.json"


def load_config() -> CliConfig | None:
    path = config_path()
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise NotLoggedIn(f"cannot read {path}: {exc}") from None
    if not isinstance(data, dict) or not data.get("url") or not data.get("token"):
        raise NotLoggedIn(f"{path} is not a saved ipaas login")
    fields = {k: str(data.get(k) or "") for k in ("url", "token", "username", "token_id")}
    return CliConfig(**fields)


def save_config(config: CliConfig) -> Path:
    """Write atomically, readable by the owner only: the file holds a bearer token."""
    path = config_path()
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".cli-", dir=path.parent)  # mkstemp creates it 0600
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(asdict(config), f, indent=2)
            f.write("\n")
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return path


def delete_config() -> bool:
    try:
        config_path().unlink()
    except FileNotFoundError:
        return False
    return True


def normalize_url(url: str) -> str:
    url = url.strip().rstrip("/")
    if not url.startswith(("http://", "https://")):
        url = f"http://{url}"
    return url


def current_login() -> CliConfig:
    """The saved login with IPAAS_URL / IPAAS_TOKEN overriding it (scripts, CI, tests)."""
    saved = load_config()
    url = os.environ.get("IPAAS_URL") or (saved.url if saved else "")
    token = os.environ.get("IPAAS_TOKEN") or (saved.token if saved else "")
    if not url or not token:
        raise NotLoggedIn("not logged in: run `ipaas login` (or set IPAAS_URL and IPAAS_TOKEN)")
    username = saved.username if saved and not os.environ.get("IPAAS_TOKEN") else ""
    token_id = saved.token_id if saved and token == saved.token else ""
    return CliConfig(normalize_url(url), token, username, token_id)


# --- the API client -------------------------------------------------------------------------


def problem_of(response: httpx.Response) -> ApiError:
    """The server's problem details, or a readable stand-in when the body is something else."""
    code, detail = f"http_{response.status_code}", response.reason_phrase or "request failed"
    with contextlib.suppress(ValueError):
        body = response.json()
        if isinstance(body, dict):
            code = str(body.get("code") or code)
            detail = str(body.get("detail") or body.get("title") or detail)
            detail += _validation_hint(body)
    return ApiError(response.status_code, code, detail)


def _validation_hint(body: dict[str, Any]) -> str:
    """422s list what is wrong; the first item is what a user needs to fix it."""
    errors = body.get("errors")
    if not isinstance(errors, list) or not errors or not isinstance(errors[0], dict):
        return ""
    first = errors[0]
    where = ".".join(str(p) for p in first.get("loc", []) if p != "body")
    return f": {where}: {first.get('msg')}" if where else f": {first.get('msg')}"


class Client:
    """A thin, synchronous wrapper over httpx that turns 4xx/5xx into ApiError."""

    def __init__(self, url: str, token: str | None = None) -> None:
        import httpx

        headers = {"Accept": "application/json", "User-Agent": "ipaas-cli"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        self.url = normalize_url(url)
        self.token = token
        self.http = httpx.Client(base_url=self.url, headers=headers, timeout=DEFAULT_TIMEOUT_S)

    @classmethod
    def from_login(cls) -> Client:
        login = current_login()
        return cls(login.url, login.token)

    def clone(self) -> Client:
        """A separate connection pool, for use from another thread."""
        return Client(self.url, self.token)

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        response = self.http.request(method, path, **kwargs)
        if response.status_code >= 400:
            raise problem_of(response)
        return response

    def get(self, path: str, **params: Any) -> Any:
        clean = {k: v for k, v in params.items() if v is not None}
        return self.request("GET", path, params=clean).json()

    def post(self, path: str, body: Any = None) -> Any:
        response = self.request("POST", path, json=body)
        return response.json() if response.content else None

    def patch(self, path: str, body: Any) -> Any:
        return self.request("PATCH", path, json=body).json()

    def delete(self, path: str, **params: Any) -> None:
        self.request("DELETE", path, params=params)

    # --- applications ---------------------------------------------------------------------

    def resolve_app(self, ref: str) -> dict[str, Any]:
        """An app by id or by name (names are looked up in the caller's list)."""
        if _APP_ID.match(ref):
            try:
                return dict(self.get(f"{APPS}/{ref}"))
            except ApiError as exc:
                if exc.status != 404:
                    raise
        found = self.find_app_by_name(ref)
        if found is None:
            raise ApiError(404, "not_found", f"no such application: {ref}")
        return found

    def find_app_by_name(self, name: str) -> dict[str, Any] | None:
        offset, limit = 0, 500
        while True:
            page = self.get(APPS, limit=limit, offset=offset)
            for item in page["items"]:
                if item["name"] == name:
                    return dict(item)
            offset += limit
            if offset >= page["total"] or not page["items"]:
                return None

    def status(
        self, app_id: str, etag: str | None = None, wait: float = 0
    ) -> tuple[dict[str, Any] | None, str | None]:
        """(status, etag); status is None when unchanged since `etag` (304)."""
        headers = {"If-None-Match": etag} if etag else {}
        params = {"wait": f"{wait:g}"} if wait else {}
        response = self.request(
            "GET",
            f"{APPS}/{app_id}/status",
            params=params,
            headers=headers,
            timeout=DEFAULT_TIMEOUT_S + wait,
        )
        new_etag = response.headers.get("etag", etag)
        if response.status_code == 304:
            return None, new_etag
        return dict(response.json()), new_etag

    # --- Server-Sent Events -----------------------------------------------------------------

    @contextlib.contextmanager
    def sse(
        self, path: str, params: dict[str, Any], last_event_id: str | None = None
    ) -> Iterator[Iterator[tuple[str | None, str]] | None]:
        """Open an event stream; yields an iterator of (id, data), or None when the server
        answered with something other than an event stream (no follow support there)."""
        import httpx

        headers = {"Accept": "text/event-stream"}
        if last_event_id:
            headers["Last-Event-ID"] = last_event_id
        timeout = httpx.Timeout(DEFAULT_TIMEOUT_S, read=None)  # a quiet log is not an error
        with self.http.stream("GET", path, params=params, headers=headers, timeout=timeout) as r:
            if r.status_code >= 400:
                r.read()
                raise problem_of(r)
            if not r.headers.get("content-type", "").startswith("text/event-stream"):
                yield None
                return
            yield parse_sse(r.iter_lines())


def parse_sse(lines: Iterator[str]) -> Iterator[tuple[str | None, str]]:
    """The subset of the SSE format servers send: `id:` and (multi-line) `data:` fields."""
    event_id: str | None = None
    data: list[str] = []
    for raw in lines:
        line = raw.rstrip("\r")
        if not line:
            if data:
                yield event_id, "\n".join(data)
            data = []
            continue
        if line.startswith(":"):
            continue  # a keep-alive comment
        field, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if field == "id":
            event_id = value
        elif field == "data":
            data.append(value)
    if data:
        yield event_id, "\n".join(data)
