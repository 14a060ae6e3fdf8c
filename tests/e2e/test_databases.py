"""Databases on the real platform and engine: one database of each engine for the module,
created once; an app that reads and writes Redis through the URL it was attached; credentials
that work from the owner's network and nowhere else; verified backups, a failed one, restore;
delete."""

from __future__ import annotations

import contextlib
import gzip
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import docker
import httpx
import pytest
from typer.testing import CliRunner, Result

from ipaas.databases.schedule import BackupSchedule
from ipaas.domain.cron import next_run
from ipaas.domain.databases import LABEL_DB_PACKAGES
from ipaas.runtime.docker import network_name
from ipaas.runtime.docker_databases import db_volume_name
from tests.cli.conftest import root_app
from tests.e2e.conftest import E2E

pytestmark = [pytest.mark.docker, pytest.mark.slow]
ENGINES = ("postgres", "mariadb", "redis")
CLIENT_IMAGE = {"postgres": "ipaas-db/postgres:15", "mariadb": "ipaas-db/mariadb:10.11"}

# A tiny app that keeps a counter in Redis through REDIS_URL, speaking RESP with the stdlib.
REDIS_APP = {
    "Dockerfile": """FROM python:3.11-slim
WORKDIR /srv
COPY server.py .
CMD ["python3", "-u", "server.py"]
""",
    "server.py": """
import os, socket
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

def command(*words):
    url = urlsplit(os.environ["REDIS_URL"])
    with socket.create_connection((url.hostname, url.port), timeout=5) as s:
        payload = b""
        for argv in (["AUTH", url.username, url.password], list(words)):
            payload += b"*%d\\r\\n" % len(argv)
            for w in argv:
                w = str(w).encode()
                payload += b"$%d\\r\\n%s\\r\\n" % (len(w), w)
        s.sendall(payload)
        data = b""
        while data.count(b"\\r\\n") < 2:
            data += s.recv(4096)
        auth, reply = data.split(b"\\r\\n")[:2]
        if not auth.startswith(b"+OK"):
            raise RuntimeError(auth.decode())
        return reply.decode()

class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_GET(self):
        if self.path == "/health":
            body = b"ok"
        elif "REDIS_URL" not in os.environ:
            body = b"no database"
        else:
            try:
                body = command("INCR", "hits").lstrip(":").encode()
            except Exception as exc:
                self.send_response(503)
                self.end_headers()
                self.wfile.write(repr(exc).encode())
                return
        self.send_response(200)
        self.end_headers()
        self.wfile.write(body)

ThreadingHTTPServer(("0.0.0.0", int(os.environ["PORT"])), Handler).serve_forever()
""",
}


class Api:
    def __init__(self, e2e: E2E) -> None:
        self.e2e = e2e
        self.base = f"{e2e.live.base}/api/v1/databases"

    def call(
        self, method: str, path: str = "", headers: dict[str, str] | None = None, **kw: Any
    ) -> httpx.Response:
        return httpx.request(
            method, self.base + path, headers=headers or self.e2e.headers, timeout=120, **kw
        )

    def ok(self, method: str, path: str = "", **kw: Any) -> Any:
        r = self.call(method, path, **kw)
        assert r.status_code < 300, r.text
        return r.json() if r.content else None

    def wait(self, db_id: str, states: set[str], timeout_s: float = 120) -> Any:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            db = self.ok("GET", f"/{db_id}")
            if db["state"] in states:
                return db
            time.sleep(0.3)
        raise AssertionError(f"database {db_id} never reached {states}: {db}")

    def wait_gone(self, db_id: str) -> None:
        deadline = time.monotonic() + 60
        while self.call("GET", f"/{db_id}").status_code != 404:
            assert time.monotonic() < deadline, f"database {db_id} was never deleted"
            time.sleep(0.3)

    def wait_job(self, db_id: str, job: dict[str, Any], timeout_s: float = 300) -> Any:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            found = self.ok("GET", f"/{db_id}/jobs/{job['id']}")
            if found["status"] != "running":
                return found
            time.sleep(0.3)
        raise AssertionError(f"job {job['id']} never finished")

    def events(self, db_id: str, kind: str) -> list[Any]:
        return [e for e in self.ok("GET", f"/{db_id}/events") if e["kind"] == kind]

    def wait_backup(self, db_id: str, backup_id: str) -> Any:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            backup = self.ok("GET", f"/{db_id}/backups/{backup_id}")
            if backup["status"] != "running":
                return backup
            time.sleep(0.3)
        raise AssertionError(f"backup {backup_id} never finished")


@pytest.fixture(scope="module")
def api(e2e: E2E) -> Api:
    return Api(e2e)


@pytest.fixture(scope="module")
def databases(api: Api) -> Iterator[dict[str, Any]]:
    """One database of each engine, created together (each ready in seconds)."""
    started = time.monotonic()
    created = {
        engine: api.ok("POST", json={"name": f"{engine}-{uuid.uuid4().hex[:6]}", "engine": engine})
        for engine in ENGINES
    }
    ready = {engine: api.wait(db["id"], {"running", "failed"}) for engine, db in created.items()}
    print(f"\n3 databases ready in {time.monotonic() - started:.1f} s")
    yield ready
    for db in ready.values():
        for link in api.call("GET", f"/{db['id']}/attachments").json():
            api.call("DELETE", f"/{db['id']}/attachments/{link['app_id']}")
        api.call("DELETE", f"/{db['id']}?final_backup=false")
    for db in ready.values():
        api.wait_gone(db["id"])


def credentials(api: Api, db: dict[str, Any]) -> dict[str, Any]:
    return api.ok("GET", f"/{db['id']}/credentials")


def sql(engine: str, creds: dict[str, Any], network: str, query: str) -> tuple[int, str]:
    """Run a query as the database's user from a client container on `network`."""
    if engine == "postgres":
        argv = ["psql", creds["url"], "-At", "-v", "ON_ERROR_STOP=1", "-c", query]
        entry = "psql"
    else:
        argv = ["mariadb", "-h", creds["host"], "-u", creds["username"], f"-p{creds['password']}",
                "-N", "-B", "--connect-timeout=3", creds["database"], "-e", query]  # fmt: skip
        entry = "mariadb"
    client = docker.from_env()
    container = client.containers.run(
        CLIENT_IMAGE[engine], argv[1:], entrypoint=entry, network=network, detach=True,
        labels={"org.ipaas.platform": "test-db-client"},
    )  # fmt: skip
    try:
        code = container.wait(timeout=60)["StatusCode"]
        return code, container.logs().decode().strip()
    finally:
        container.remove(force=True, v=True)  # the image declares a VOLUME


def owner_id(e2e: E2E) -> str:
    user = e2e.live.run(e2e.live.plane.stores.users.by_username(e2e.admin_name))
    assert user is not None
    return user.id


def test_engine_images_are_named_by_major_version_and_record_packages(
    databases: dict[str, Any],
) -> None:
    client = docker.from_env()
    for tag, package in (
        ("ipaas-db/postgres:15", "postgresql-15=15."),
        ("ipaas-db/mariadb:10.11", "mariadb-server=1:10.11."),
        ("ipaas-db/redis:7", "redis-server=5:7.0."),
    ):
        assert package in client.images.get(tag).labels[LABEL_DB_PACKAGES]


@pytest.mark.parametrize("engine", ENGINES)
def test_database_runs_on_its_volume_with_memory_sized_settings(
    api: Api, databases: dict[str, Any], engine: str
) -> None:
    db = databases[engine]
    assert db["state"] == "running", db
    client = docker.from_env()
    (container,) = client.containers.list(filters={"label": f"org.ipaas.database={db['id']}"})
    attrs = container.attrs
    assert attrs["HostConfig"]["Memory"] == db["memory_mb"] * 2**20
    assert not attrs["NetworkSettings"]["Ports"] or not any(
        attrs["NetworkSettings"]["Ports"].values()
    )
    assert list(attrs["NetworkSettings"]["Networks"]) == [
        network_name(attrs["Config"]["Labels"]["org.ipaas.owner"])
    ]
    assert any(m.get("Name") == db_volume_name(db["id"]) for m in attrs["Mounts"])
    assert any("64MB" in a or "153mb" in a or "102M" in a for a in attrs["Args"])


@pytest.mark.parametrize("engine", ["postgres", "mariadb"])
def test_credentials_work_from_the_owners_network_only(
    e2e: E2E, api: Api, databases: dict[str, Any], engine: str
) -> None:
    creds = credentials(api, databases[engine])
    assert len(creds["password"]) >= 24
    own = network_name(owner_id(e2e))
    code, out = sql(engine, creds, own, "SELECT 40 + 2")
    assert (code, out) == (0, "42"), out
    # Another tenant's app network: the database cannot be reached at all.
    other_id, _ = e2e.make_user()
    other_net = e2e.live.run(e2e.live.plane.adapters.runtime.ensure_network(other_id))  # type: ignore[attr-defined]
    try:
        code, out = sql(engine, creds, other_net, "SELECT 40 + 2")
        # (the client's error names the database's host, whose random id may contain "42")
        assert code != 0 and out.strip() != "42", out
    finally:
        with contextlib.suppress(docker.errors.APIError):
            docker.from_env().networks.get(other_net).remove()
    # A wrong password is refused even from the owner's network.
    code, _ = sql(
        engine,
        {**creds, "password": "wrong", "url": creds["url"].replace(creds["password"], "wrong")},
        own,
        "SELECT 1",
    )
    assert code != 0


def test_another_users_database_is_not_found(e2e: E2E, api: Api, databases: dict[str, Any]) -> None:
    other_id, _ = e2e.make_user()
    headers = {
        "Authorization": f"Bearer {e2e.live.plane.stores.access_tokens.issue(other_id, 'user')}"
    }
    db_id = databases["postgres"]["id"]
    for method, path in (("GET", ""), ("GET", "/credentials"), ("DELETE", ""), ("POST", "/backups"),
                         ("POST", "/restart"), ("GET", "/backups")):  # fmt: skip
        r = api.call(method, f"/{db_id}{path}", headers=headers)
        assert r.status_code == 404 and r.json()["code"] == "not_found", (method, path, r.text)
    assert db_id not in {d["id"] for d in api.ok("GET", headers=headers)}


def test_attached_app_reads_and_writes_through_redis_url(
    e2e: E2E, api: Api, databases: dict[str, Any]
) -> None:
    db = databases["redis"]
    app_id = e2e.create(e2e.repo(files=REDIS_APP), health_check="/health")
    assert e2e.wait(app_id)["state"] == "running"
    name = e2e.get(app_id)["name"]
    assert e2e.via_router(name, "/").text == "no database"
    link = api.ok("POST", f"/{db['id']}/attachments", json={"app_id": app_id})
    assert link["env_name"] == "REDIS_URL"
    deadline = time.monotonic() + 90
    while e2e.via_router(name, "/").text == "no database" and time.monotonic() < deadline:
        time.sleep(0.5)
    first = int(e2e.via_router(name, "/").text)
    assert int(e2e.via_router(name, "/").text) == first + 1  # written, and read back
    # The URL is computed at start, not copied into the app's env vars.
    assert all(env["key"] != "REDIS_URL" for env in e2e.get(app_id)["envs"])
    # Attached: the database cannot be deleted until it is detached.
    r = api.call("DELETE", f"/{db['id']}")
    assert r.status_code == 409 and r.json()["code"] == "database_attached"
    assert api.call("DELETE", f"/{db['id']}/attachments/{app_id}").status_code == 204
    deadline = time.monotonic() + 90
    while e2e.via_router(name, "/").text != "no database" and time.monotonic() < deadline:
        time.sleep(0.5)
    assert e2e.via_router(name, "/").text == "no database"


@pytest.mark.parametrize("engine", ["postgres", "mariadb"])
def test_backup_is_verified_and_restore_brings_the_data_back(
    e2e: E2E, api: Api, databases: dict[str, Any], engine: str
) -> None:
    db = databases[engine]
    creds = credentials(api, db)
    own = network_name(owner_id(e2e))
    code, out = sql(engine, creds, own, "CREATE TABLE notes (id INT PRIMARY KEY, body TEXT); "
                    "INSERT INTO notes VALUES (1, 'one'), (2, 'two')")  # fmt: skip
    assert code == 0, out
    backup = api.wait_backup(db["id"], api.ok("POST", f"/{db['id']}/backups")["id"])
    assert backup["status"] == "succeeded", backup
    tables = backup["verified"]["tables"]
    assert tables[("public.notes" if engine == "postgres" else "notes")] == 2
    download = api.call("GET", f"/{db['id']}/backups/{backup['id']}/download")
    assert download.status_code == 200 and len(download.content) == backup["size_bytes"] > 0
    code, out = sql(engine, creds, own, "DELETE FROM notes WHERE id = 1")
    assert code == 0, out
    job = api.wait_job(db["id"], api.ok("POST", f"/{db['id']}/backups/{backup['id']}/restore"))
    assert job["status"] == "succeeded", job
    safety = api.ok("GET", f"/{db['id']}/backups/{job['detail']['safety_backup_id']}")
    assert safety["status"] == "succeeded" and safety["reason"] == "before-restore"
    code, out = sql(engine, creds, own, "SELECT count(*) FROM notes")
    assert (code, out) == (0, "2"), out


def test_redis_backup_is_verified_and_restored(
    e2e: E2E, api: Api, databases: dict[str, Any]
) -> None:
    db = databases["redis"]
    container = docker.from_env().containers.list(
        filters={"label": f"org.ipaas.database={db['id']}"}
    )[0]

    def admin(*words: str) -> str:
        return container.exec_run(["ipaas-db", "admin", *words]).output.decode().strip()

    admin("SET", "kept", "yes")
    backup = api.wait_backup(db["id"], api.ok("POST", f"/{db['id']}/backups")["id"])
    assert backup["status"] == "succeeded" and backup["verified"]["keys"] >= 1, backup
    admin("DEL", "kept")
    job = api.wait_job(db["id"], api.ok("POST", f"/{db['id']}/backups/{backup['id']}/restore"))
    assert job["status"] == "succeeded", job
    assert api.wait(db["id"], {"running"})["state"] == "running"
    assert admin("GET", "kept") == "yes"


def test_a_backup_that_cannot_be_taken_is_recorded_failed(
    api: Api, databases: dict[str, Any]
) -> None:
    db = databases["mariadb"]
    (container,) = docker.from_env().containers.list(
        filters={"label": f"org.ipaas.database={db['id']}"}
    )
    container.stop(timeout=10)
    try:
        backup = api.wait_backup(db["id"], api.ok("POST", f"/{db['id']}/backups")["id"])
        assert backup["status"] == "failed" and backup["error"], backup
        (event,) = [e for e in api.events(db["id"], "backup_failed")
                    if e["detail"]["backup_id"] == backup["id"]]  # fmt: skip
        assert backup["error"][:100] in event["detail"]["error"]
        r = api.call("GET", f"/{db['id']}/backups/{backup['id']}/download")
        assert r.status_code == 409 and r.json()["code"] == "backup_not_usable"
    finally:
        api.ok("POST", f"/{db['id']}/restart")
        assert api.wait(db["id"], {"running", "failed"})["state"] == "running"


def test_bad_requests_are_refused_and_delete_removes_everything(api: Api, e2e: E2E) -> None:
    r = api.call("POST", json={"name": "x1", "engine": "oracle"})
    assert r.status_code == 422 and r.json()["code"] == "unknown_engine"
    r = api.call("POST", json={"name": "x1", "engine": "postgres", "version": "9"})
    assert r.status_code == 422 and r.json()["code"] == "unknown_engine_version"
    name = f"gone-{uuid.uuid4().hex[:6]}"
    db = api.ok("POST", json={"name": name, "engine": "redis", "memory_mb": 64})
    r = api.call("POST", json={"name": name, "engine": "redis"})
    assert r.status_code == 409 and r.json()["code"] == "name_taken"
    assert api.wait(db["id"], {"running", "failed"})["state"] == "running"
    assert api.call("DELETE", f"/{db['id']}").status_code == 202
    api.wait_gone(db["id"])
    client = docker.from_env()
    assert not client.containers.list(all=True, filters={"label": f"org.ipaas.database={db['id']}"})
    assert not client.volumes.list(filters={"name": db_volume_name(db["id"])})


# --- attached SQL apps, rotation under load ------------------------------------------------------
# The lightest real app for a SQL database: the engine's own image (it has the client and perl),
# a one-process HTTP server in core perl; each request writes a row and reads the count back
# through DATABASE_URL with psql or mariadb.
SQL_APP_SERVER = r"""
use strict;
use IO::Socket::INET;
my %client = (
    postgres => sub { my $q = shift; `psql "$ENV{DATABASE_URL}" -X -At -v ON_ERROR_STOP=1 -c "$q" 2>&1` },
    mysql => sub {
        my $q = shift;
        my ($u, $p, $h, $port, $db) = $ENV{DATABASE_URL} =~ m{^mysql://([^:]+):([^@]+)@([^:]+):(\d+)/(.+)$};
        local $ENV{MYSQL_PWD} = $p;
        `mariadb -h $h -P $port -u $u -N -B $db -e "$q" 2>&1`
    },
);
my $server = IO::Socket::INET->new(LocalPort => $ENV{PORT}, Listen => 64, ReuseAddr => 1) or die $!;
while (my $c = $server->accept) {
    my $line = <$c> // '';
    while (my $h = <$c>) { last if $h =~ /^\r?\n$/ }
    my ($path) = $line =~ m{^GET (\S+)};
    my ($code, $body) = (200, 'ok');
    if (($path // '') ne '/health') {
        if (!$ENV{DATABASE_URL}) { $body = 'no database' }
        else {
            my ($scheme) = $ENV{DATABASE_URL} =~ m{^(\w+)://};
            $body = $client{$scheme}->('CREATE TABLE IF NOT EXISTS hits (id INT); INSERT INTO hits VALUES (1); SELECT count(*) FROM hits');
            $code = $? ? 503 : 200;
            ($body) = $body =~ /([^\n]*)\n?\z/ if $code == 200;  # the count, the last line
        }
    }
    print $c "HTTP/1.0 $code X\r\nContent-Length: " . length($body) . "\r\nConnection: close\r\n\r\n$body";
    close $c;
}
"""


def sql_app(engine: str) -> dict[str, str]:
    return {
        "Dockerfile": f"FROM {CLIENT_IMAGE[engine]}\nCOPY server.pl /srv/server.pl\n"
        'ENTRYPOINT ["perl", "/srv/server.pl"]\n',
        "server.pl": SQL_APP_SERVER,
    }


class Load:
    """Requests one after another through the router until stopped; every answer kept."""

    def __init__(self, e2e: E2E, name: str) -> None:
        self.e2e, self.name = e2e, name
        self.answers: list[tuple[int, str]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                r = self.e2e.via_router(self.name, "/")
                self.answers.append((r.status_code, r.text))
            except httpx.HTTPError as exc:
                self.answers.append((0, repr(exc)))

    def __enter__(self) -> Load:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(30)

    def failures(self) -> list[tuple[int, str]]:
        return [a for a in self.answers if a[0] != 200 or not a[1].isdigit()]


def attach_and_wait(e2e: E2E, api: Api, db: dict[str, Any], files: dict[str, str]) -> str:
    """An app deployed and attached to the database, answering with a count it wrote."""
    app_id = e2e.create(e2e.repo(files=files), health_check="/health")
    assert e2e.wait(app_id)["state"] == "running", e2e.get(app_id, "/events")
    name = e2e.get(app_id)["name"]
    api.ok("POST", f"/{db['id']}/attachments", json={"app_id": app_id})
    deadline = time.monotonic() + 120
    while not e2e.via_router(name, "/").text.isdigit() and time.monotonic() < deadline:
        time.sleep(0.5)
    first = int(e2e.via_router(name, "/").text)
    assert int(e2e.via_router(name, "/").text) == first + 1  # written, and read back
    return name


def redis_login_works(db: dict[str, Any], user: str, password: str) -> bool:
    (container,) = docker.from_env().containers.list(
        filters={"label": f"org.ipaas.database={db['id']}"}
    )
    result = container.exec_run(
        ["redis-cli", "--no-auth-warning", "--user", user, "--pass", password, "ping"]
    )
    return result.output.decode().strip() == "PONG"


@pytest.mark.parametrize("engine", ENGINES)
def test_rotation_under_load_loses_no_request_and_revokes_the_old_login(
    e2e: E2E, api: Api, databases: dict[str, Any], engine: str
) -> None:
    db = databases[engine]
    name = attach_and_wait(e2e, api, db, REDIS_APP if engine == "redis" else sql_app(engine))
    old = credentials(api, db)
    with Load(e2e, name) as load:
        time.sleep(1)
        job = api.wait_job(db["id"], api.ok("POST", f"/{db['id']}/credentials/rotate"))
        time.sleep(1)
    assert job["status"] == "succeeded", job
    assert len(load.answers) >= 5 and not load.failures(), load.failures()[:5]
    new = credentials(api, db)
    assert new["username"] != old["username"] and new["password"] != old["password"]
    assert job["detail"]["revoked"] == [old["username"]] and job["detail"]["apps"] == [name]
    counts = [int(text) for _, text in load.answers]
    assert counts == sorted(counts)  # every request wrote and read the same data
    if engine == "redis":
        assert not redis_login_works(db, old["username"], old["password"])
        assert redis_login_works(db, new["username"], new["password"])
    else:
        own = network_name(owner_id(e2e))
        assert sql(engine, old, own, "SELECT 1")[0] != 0  # the old password is refused
        assert sql(engine, new, own, "SELECT count(*) FROM hits")[0] == 0
    assert api.events(db["id"], "credentials_rotated")


# --- the data viewer -------------------------------------------------------------------------------
HOSTILE = 'evil"; DROP TABLE notes; --`x'
# A name that, pasted into the clients' input, would be a shell escape and a new delimiter.
SNEAKY = "line\n\\! touch /tmp/pwned\nDELIMITER //\nx"


def admin_sql(db: dict[str, Any], engine: str, database: str, statements: str) -> str:
    (container,) = docker.from_env().containers.list(
        filters={"label": f"org.ipaas.database={db['id']}"}
    )
    argv = ["ipaas-db", "admin", "-d", database, "-At", "-c"] if engine == "postgres" else [
        "ipaas-db", "admin", database, "-N", "-B", "-e"]  # fmt: skip
    result = container.exec_run([*argv, statements])
    assert result.exit_code == 0, result.output
    return str(result.output.decode())


@pytest.mark.parametrize("engine", ["postgres", "mariadb"])
def test_viewer_pages_tables_and_quotes_hostile_names(
    api: Api, databases: dict[str, Any], engine: str
) -> None:
    db = databases[engine]
    database = credentials(api, db)["database"]
    q = '"' if engine == "postgres" else "`"
    hostile = q + HOSTILE.replace(q, q + q) + q
    admin_sql(db, engine, database, "CREATE TABLE viewed (id INT PRIMARY KEY, body TEXT); "
              "INSERT INTO viewed SELECT n, CONCAT('row ', n) FROM "
              + ("generate_series(1, 250) n" if engine == "postgres" else
                 "(SELECT seq AS n FROM seq_1_to_250) s")
              + f"; CREATE TABLE {hostile} (v TEXT); INSERT INTO {hostile} VALUES ('kept')"
              + ("; ANALYZE viewed" if engine == "postgres" else "; ANALYZE TABLE viewed"))  # fmt: skip
    tables = {t["name"]: t for t in api.ok("GET", f"/{db['id']}/tables")}
    assert HOSTILE in tables and tables["viewed"]["estimated_rows"] == 250
    page = api.ok("GET", f"/{db['id']}/rows", params={"table": "viewed", "limit": 100})
    assert [c["name"] for c in page["columns"]] == ["id", "body"] and page["columns"][0][
        "primary_key"
    ]
    assert page["columns"][0]["type"] in ("integer", "int(11)")
    assert (page["paging"], page["order_by"]) == ("key", ["id"])
    assert page["rows"][0] == [1, "row 1"] and len(page["rows"]) == 100
    assert page["truncated"] and page["next"]
    seen = pages(api, db, "viewed", 100)
    assert [r[0] for r in seen] == list(range(1, 251)) and seen[-1] == [250, "row 250"]
    # A name with quotes, a semicolon and a comment is only ever a quoted name.
    evil = api.ok("GET", f"/{db['id']}/rows", params={"table": HOSTILE})
    assert evil["rows"] == [["kept"]]
    sneaky = q + SNEAKY.replace(q, q + q) + q
    admin_sql(db, engine, database, f"CREATE TABLE {sneaky} (v INT PRIMARY KEY); "
              f"INSERT INTO {sneaky} VALUES (1), (2)")  # fmt: skip
    assert [r[0] for r in pages(api, db, SNEAKY, 1)] == [1, 2]
    (container,) = docker.from_env().containers.list(
        filters={"label": f"org.ipaas.database={db['id']}"}
    )
    assert container.exec_run(["test", "-e", "/tmp/pwned"]).exit_code == 1
    for bad in ('viewed"; DROP TABLE viewed; --', "viewed` ; DROP TABLE viewed; -- "):
        r = api.call("GET", f"/{db['id']}/rows", params={"table": bad})
        assert r.status_code == 404 and r.json()["code"] == "not_found", r.text
    assert api.ok("GET", f"/{db['id']}/rows", params={"table": "viewed", "limit": 1})["rows"]
    r = api.call("GET", f"/{db['id']}/rows", params={"table": "viewed", "limit": 5000})
    assert r.status_code == 422 and r.json()["code"] == "invalid_limit"


def pages(
    api: Api, db: dict[str, Any], table: str, limit: int, between: Any = None
) -> list[list[Any]]:
    """Every row of the table, following `next` until the last page; `between()` runs after
    each page."""
    rows: list[list[Any]] = []
    params: dict[str, Any] = {"table": table, "limit": limit}
    while True:
        page = api.ok("GET", f"/{db['id']}/rows", params=params)
        rows += page["rows"]
        assert len(page["rows"]) <= limit
        if page["next"] is None:
            assert not page["truncated"]
            return rows
        if between is not None:
            between()
        params = {"table": table, "limit": limit, "cursor": page["next"]}


@pytest.mark.parametrize("engine", ["postgres", "mariadb"])
def test_viewer_pages_follow_the_key_and_refuse_bad_cursors(
    api: Api, databases: dict[str, Any], engine: str
) -> None:
    db = databases[engine]
    database = credentials(api, db)["database"]
    pg = engine == "postgres"
    numbers = "generate_series(1, 40) n" if pg else "(SELECT seq AS n FROM seq_1_to_40) s"
    admin_sql(db, engine, database,
              "CREATE TABLE pairs (a INT NOT NULL, b VARCHAR(20) NOT NULL, v TEXT, "
              "PRIMARY KEY (b, a)); "
              f"INSERT INTO pairs SELECT n, CONCAT('k', n % 5), CONCAT('v', n) FROM {numbers}; "
              "CREATE TABLE uniq (code VARCHAR(10) NOT NULL UNIQUE, n INT); "
              "INSERT INTO uniq VALUES ('b', 2), ('a', 1), ('c', 3); "
              "CREATE TABLE bare (n INT); INSERT INTO bare VALUES (3), (1), (2), (1); "
              + ("CREATE TABLE bin (k BYTEA PRIMARY KEY, v INT); " if pg else
                 "CREATE TABLE bin (k VARBINARY(8) PRIMARY KEY, v INT); ")
              + "INSERT INTO bin VALUES (" + ("'\\x00ff'" if pg else "X'00FF'") + ", 1), ("
              + ("'\\x0001'" if pg else "X'0001'") + ", 2)")  # fmt: skip
    # A composite key: every row once, in (b, a) order, pages of 7.
    first = api.ok("GET", f"/{db['id']}/rows", params={"table": "pairs", "limit": 7})
    assert (first["paging"], first["order_by"]) == ("key", ["b", "a"])
    assert [c["primary_key"] for c in first["columns"]] == [True, True, False]
    everything = pages(api, db, "pairs", 7)
    keys = [(r[1], r[0]) for r in everything]
    assert keys == sorted(keys) and len(set(keys)) == 40
    # Rows added while paging: one before the position is not seen, one after it is.
    admin_sql(db, engine, database, "DELETE FROM pairs WHERE b = 'zz'")
    added: list[str] = []

    def add_rows() -> None:
        if not added:
            admin_sql(db, engine, database,
                      "INSERT INTO pairs VALUES (99, 'a0', 'before'), (99, 'zz', 'after')")  # fmt: skip
            added.append("yes")

    seen = pages(api, db, "pairs", 7, between=add_rows)
    assert "after" in [r[2] for r in seen] and "before" not in [r[2] for r in seen]
    assert len(seen) == len({(r[1], r[0]) for r in seen})  # no row twice
    # A unique NOT NULL key when there is no primary key; a binary key.
    page = api.ok("GET", f"/{db['id']}/rows", params={"table": "uniq", "limit": 2})
    assert (page["paging"], page["order_by"], page["rows"]) == (
        "key",
        ["code"],
        [["a", 1], ["b", 2]],
    )
    assert [r[1] for r in pages(api, db, "uniq", 2)] == [1, 2, 3]
    assert [r[1] for r in pages(api, db, "bin", 1)] == [2, 1]
    # No key at all: PostgreSQL's row ids, MariaDB an offset; all rows either way.
    page = api.ok("GET", f"/{db['id']}/rows", params={"table": "bare", "limit": 3})
    assert page["paging"] == ("ctid" if pg else "offset")
    assert sorted(r[0] for r in pages(api, db, "bare", 3)) == [1, 1, 2, 3]
    # Cursors: only the viewer's, only for the table they came from.
    for bad in ("garbage", first["next"][:-4] + "AAAA", "x" * 4096):
        r = api.call("GET", f"/{db['id']}/rows", params={"table": "pairs", "cursor": bad})
        assert r.status_code == 422 and r.json()["code"] == "invalid_cursor", r.text
    r = api.call("GET", f"/{db['id']}/rows", params={"table": "uniq", "cursor": first["next"]})
    assert r.status_code == 422 and r.json()["code"] == "invalid_cursor", r.text
    # The key changed since the cursor was given: start again.
    admin_sql(db, engine, database, "ALTER TABLE pairs DROP PRIMARY KEY" if not pg
              else "ALTER TABLE pairs DROP CONSTRAINT pairs_pkey")  # fmt: skip
    r = api.call("GET", f"/{db['id']}/rows", params={"table": "pairs", "cursor": first["next"]})
    assert r.status_code == 409 and r.json()["code"] == "stale_cursor", r.text


@pytest.mark.parametrize("engine", ["postgres", "mariadb"])
def test_console_reads_and_refuses_writes_ddl_and_runaways(
    api: Api, databases: dict[str, Any], engine: str
) -> None:
    db = databases[engine]
    database = credentials(api, db)["database"]
    admin_sql(db, engine, database, "CREATE TABLE IF NOT EXISTS guarded (id INT, v TEXT); "
              "INSERT INTO guarded VALUES (1, NULL), (2, 'a,b')")  # fmt: skip

    def query(text: str) -> httpx.Response:
        return api.call("POST", f"/{db['id']}/query", json={"sql": text})

    r = query("SELECT id, v FROM guarded ORDER BY id")
    assert r.status_code == 200, r.text
    assert r.json()["rows"] == [["1", None], ["2", "a,b"]]
    assert [c["name"] for c in r.json()["columns"]] == ["id", "v"]
    for write in ("INSERT INTO guarded VALUES (3, 'x')", "DELETE FROM guarded",
                  "CREATE TABLE planted (a INT)", "DROP TABLE guarded",
                  "SELECT 1; DROP TABLE guarded"):  # fmt: skip
        r = query(write)
        assert r.status_code == 403 and r.json()["code"] == "read_only", (write, r.text)
    assert admin_sql(db, engine, database, "SELECT count(*) FROM guarded").strip() == "2"
    runaway = "SELECT pg_sleep(30)" if engine == "postgres" else "SELECT SLEEP(30)"
    started = time.monotonic()
    r = query(runaway)
    assert r.status_code == 422 and r.json()["code"] == "query_timeout", r.text
    assert time.monotonic() - started < 20
    many = ("SELECT n FROM generate_series(1, 100000) n" if engine == "postgres"
            else "SELECT seq FROM seq_1_to_100000")  # fmt: skip
    r = query(many)
    assert r.status_code == 200 and r.json()["truncated"] and len(r.json()["rows"]) == 1000


def test_redis_key_browser_scans_with_a_pattern(api: Api, databases: dict[str, Any]) -> None:
    db = databases["redis"]
    (container,) = docker.from_env().containers.list(
        filters={"label": f"org.ipaas.database={db['id']}"}
    )
    container.exec_run(["ipaas-db", "admin", "SET", "view:big", "x" * 5000, "EX", "600"])
    container.exec_run(["ipaas-db", "admin", "RPUSH", "view:list", "a", "b"])
    found: dict[str, Any] = {}
    cursor = "0"
    while True:
        page = api.ok("GET", f"/{db['id']}/keys",
                      params={"pattern": "view:*", "cursor": cursor, "count": 10})  # fmt: skip
        found.update({k["key"]: k for k in page["keys"]})
        cursor = page["cursor"]
        if cursor == "0":
            break
    assert set(found) == {"view:big", "view:list"}
    big = found["view:big"]
    assert big["type"] == "string" and big["size"] == 5000 and len(big["preview"]) == 256
    assert 0 < big["ttl_ms"] <= 600_000
    assert found["view:list"]["preview"] == ["a", "b"] and found["view:list"]["ttl_ms"] == -1
    r = api.call("GET", f"/{db['id']}/keys", params={"cursor": "1; FLUSHALL"})
    assert r.status_code == 422 and r.json()["code"] == "invalid_cursor"
    r = api.call("GET", f"/{databases['postgres']['id']}/keys")
    assert r.status_code == 422 and r.json()["code"] == "not_redis"


def test_viewer_is_the_owners_only(e2e: E2E, api: Api, databases: dict[str, Any]) -> None:
    other_id, _ = e2e.make_user()
    headers = {
        "Authorization": f"Bearer {e2e.live.plane.stores.access_tokens.issue(other_id, 'user')}"
    }
    for engine, method, path, body in (
        ("postgres", "GET", "/tables", None), ("postgres", "GET", "/rows?table=guarded", None),
        ("mariadb", "POST", "/query", {"sql": "SELECT 1"}), ("redis", "GET", "/keys", None),
        ("postgres", "POST", "/credentials/rotate", None), ("postgres", "GET", "/jobs", None),
        ("postgres", "GET", "/events", None), ("mariadb", "GET", "/shell", None),
    ):  # fmt: skip
        r = api.call(method, f"/{databases[engine]['id']}{path}", headers=headers, json=body)
        assert r.status_code == 404 and r.json()["code"] == "not_found", (path, r.text)


# --- ipaas db shell -------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def db_cli(e2e: E2E, tmp_path_factory: pytest.TempPathFactory) -> Any:
    """`ipaas ...` as the owner runs it, with a personal API token."""
    r = httpx.post(
        f"{e2e.live.base}/api/v1/users/me/tokens", json={"name": "db-cli"}, headers=e2e.headers
    )
    assert r.status_code in (200, 201), r.text
    env = {
        "IPAAS_CLI_CONFIG": str(tmp_path_factory.mktemp("cli") / "cli.json"),
        "IPAAS_URL": e2e.live.base,
        "IPAAS_TOKEN": r.json()["token"],
    }

    def run(*args: str, stdin: str | None = None) -> Result:
        return CliRunner().invoke(root_app(), list(args), env=env, input=stdin)

    return run


def command_lines() -> str:
    """Every process's command line on this host (the containers' included)."""
    lines = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        with contextlib.suppress(OSError):
            lines.append(cmdline.read_bytes().replace(b"\0", b" ").decode(errors="replace"))
    return "\n".join(lines)


@pytest.mark.parametrize(
    ("engine", "command", "expected"),
    [("postgres", "SELECT 40 + 2", "42"), ("mariadb", "SELECT 40 + 2", "42"),
     ("redis", "SET shell:k 42", "OK")],
)  # fmt: skip
def test_db_shell_runs_the_engines_client_in_its_container(
    api: Api, databases: dict[str, Any], db_cli: Any, engine: str, command: str, expected: str
) -> None:
    db = databases[engine]
    result = db_cli("db", "shell", db["name"], "-c", command)
    assert result.exit_code == 0, result.output
    assert expected in result.stdout
    # Statements fed on standard input, the way a script would.
    # PostgreSQL: the login (session_user); after a rotation current_user is the owner role
    # every login takes on.
    fed = {"postgres": "SELECT session_user;\n", "mariadb": "SELECT current_user();\n",
           "redis": "ACL WHOAMI\nGET shell:k\n"}[engine]  # fmt: skip
    result = db_cli("db", "shell", db["name"], stdin=fed)
    assert result.exit_code == 0, result.output
    assert credentials(api, db)["username"] in result.stdout
    if engine == "redis":
        assert "42" in result.stdout
    # A SQL client's error is the command's exit status; redis-cli prints the server's error.
    wrong = db_cli("db", "shell", db["name"], "-c", "NOPE 1")
    if engine == "redis":
        assert "ERR unknown command" in wrong.stdout, wrong.output
    else:
        assert wrong.exit_code != 0 and "NOPE" in wrong.output, wrong.output


def test_db_shell_keeps_the_password_off_every_command_line(
    api: Api, databases: dict[str, Any], db_cli: Any
) -> None:
    db = databases["postgres"]
    password = credentials(api, db)["password"]
    results: list[Result] = []
    worker = threading.Thread(
        target=lambda: results.append(db_cli("db", "shell", db["name"], "-c", "SELECT pg_sleep(3)"))
    )
    worker.start()
    seen_client = False
    try:
        deadline = time.monotonic() + 2.5
        while time.monotonic() < deadline:
            lines = command_lines()
            assert password not in lines
            seen_client = seen_client or ("psql" in lines and "pg_sleep" in lines)
            time.sleep(0.05)
    finally:
        worker.join(30)
    assert seen_client  # the shell was running while we looked
    assert results and results[0].exit_code == 0, results and results[0].output


# --- restore jobs, final backups, schedules --------------------------------------------------------
def backup_file(e2e: E2E, db: dict[str, Any], backup: dict[str, Any]) -> Path:
    folder = e2e.settings.effective_backups_dir / db["id"]
    (found,) = [p for p in folder.iterdir() if backup["id"][:8] in p.name]
    return found


def test_mariadb_restore_of_a_corrupt_file_fails_and_keeps_the_data(
    e2e: E2E, api: Api, databases: dict[str, Any]
) -> None:
    db = databases["mariadb"]
    database = credentials(api, db)["database"]
    admin_sql(db, "mariadb", database, "CREATE TABLE precious (id INT PRIMARY KEY); "
              "INSERT INTO precious VALUES (1), (2), (3)")  # fmt: skip
    backup = api.wait_backup(db["id"], api.ok("POST", f"/{db['id']}/backups")["id"])
    assert backup["status"] == "succeeded", backup
    admin_sql(db, "mariadb", database, "INSERT INTO precious VALUES (4)")
    # The file goes bad on disk after it was verified: its tables load, then a broken line.
    path = backup_file(e2e, db, backup)
    path.write_bytes(gzip.compress(gzip.decompress(path.read_bytes()) + b"\nTHIS IS NOT SQL;\n"))
    job = api.wait_job(db["id"], api.ok("POST", f"/{db['id']}/backups/{backup['id']}/restore"))
    assert job["status"] == "failed" and "nothing was changed" in job["error"], job
    assert admin_sql(db, "mariadb", database, "SELECT count(*) FROM precious").strip() == "4"
    assert api.events(db["id"], "restore_failed")
    # One job at a time: a second restore while one runs is refused.
    running = api.ok("POST", f"/{db['id']}/backups/{backup['id']}/restore")
    r = api.call("POST", f"/{db['id']}/backups/{backup['id']}/restore")
    assert r.status_code == 409 and r.json()["code"] == "operation_running"
    assert api.wait_job(db["id"], running)["status"] == "failed"


def test_scheduled_backups_are_taken_and_pruned(
    e2e: E2E, api: Api, databases: dict[str, Any]
) -> None:
    db = databases["redis"]
    assert api.ok("GET", f"/{db['id']}")["backup_interval_s"] == 86400  # the platform's default
    api.ok("PUT", f"/{db['id']}/backup-schedule", json={"interval_s": 1, "keep": 1})
    try:
        deadline = time.monotonic() + 90
        scheduled: list[dict[str, Any]] = []
        while time.monotonic() < deadline:
            # One a second: the next may already be running beside the one that succeeded.
            scheduled = [b for b in api.ok("GET", f"/{db['id']}/backups")
                         if b["reason"] == "scheduled"]  # fmt: skip
            succeeded = [b for b in scheduled if b["status"] == "succeeded"]
            if succeeded:
                taken = succeeded[0]["id"]
                break
            time.sleep(1)
        else:
            raise AssertionError(f"no scheduled backup succeeded: {scheduled}")
        # Another one later, and only the newest good one is kept (file and record).
        while time.monotonic() < deadline:
            scheduled = [b for b in api.ok("GET", f"/{db['id']}/backups")
                         if b["reason"] == "scheduled" and b["status"] == "succeeded"]  # fmt: skip
            if len(scheduled) == 1 and scheduled[0]["id"] != taken:
                break
            time.sleep(1)
        else:
            raise AssertionError("the older scheduled backup was never pruned")
    finally:
        api.ok("PUT", f"/{db['id']}/backup-schedule", json={"interval_s": 0, "keep": 1})
    folder = e2e.settings.effective_backups_dir / db["id"]
    assert not [p for p in folder.iterdir() if taken[:8] in p.name]
    r = api.call("PUT", f"/{db['id']}/backup-schedule", json={"interval_s": -1, "keep": 0})
    assert r.status_code == 422


def test_a_cron_schedule_takes_its_backup_when_its_time_comes(
    e2e: E2E, api: Api, databases: dict[str, Any]
) -> None:
    """The platform's own schedule pass, run at chosen moments: nothing before the cron's next
    run after the last backup, a scheduled backup at it."""
    db = databases["postgres"]
    api.ok("PUT", f"/{db['id']}/backup-schedule", json={"cron": "17 4 * * *", "keep": 5})
    plane = e2e.live.plane
    schedule = BackupSchedule(plane.stores.databases, plane.backup_service, e2e.settings.databases)

    def scheduled() -> list[Any]:
        return [b for b in api.ok("GET", f"/{db['id']}/backups") if b["reason"] == "scheduled"]

    try:
        before = scheduled()
        backups = api.ok("GET", f"/{db['id']}/backups")
        last = max([datetime.fromisoformat(b["created_at"]) for b in backups]
                   + [datetime.fromisoformat(db["created_at"])])  # fmt: skip
        due = next_run("17 4 * * *", last)
        assert (due.hour, due.minute) == (4, 17)
        e2e.live.run(schedule.once(now=due - timedelta(seconds=1)))
        assert scheduled() == before
        e2e.live.run(schedule.once(now=due))
        (taken,) = [b for b in scheduled() if b not in before]
        assert api.wait_backup(db["id"], taken["id"])["status"] == "succeeded"
    finally:
        api.ok("PUT", f"/{db['id']}/backup-schedule", json={"interval_s": 0, "keep": 5})


def test_delete_takes_a_final_backup_that_outlives_the_database(api: Api) -> None:
    db = api.ok("POST", json={"name": f"final-{uuid.uuid4().hex[:6]}", "engine": "redis"})
    assert api.wait(db["id"], {"running", "failed"})["state"] == "running"
    (container,) = docker.from_env().containers.list(
        filters={"label": f"org.ipaas.database={db['id']}"}
    )
    container.exec_run(["ipaas-db", "admin", "SET", "last", "words"])
    assert api.call("DELETE", f"/{db['id']}").status_code == 202
    api.wait_gone(db["id"])
    (event,) = [e for e in api.ok("GET", "/events")
                if e["database_id"] == db["id"] and e["kind"] == "deleted"]  # fmt: skip
    kept = Path(event["detail"]["final_backup_path"])
    assert kept.stat().st_size == event["detail"]["size_bytes"] > 0
    assert event["detail"]["verified"]["keys"] == 1 and event["database_name"] == db["name"]
