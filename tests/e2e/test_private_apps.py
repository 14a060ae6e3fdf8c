"""A private app through the real router: Caddy asks the control plane about every request,
a browser signs in on the app's own host, and the app never sees the platform's pass."""

from __future__ import annotations

import json

import httpx

from tests.e2e.apps import DOCKERFILE
from tests.e2e.conftest import E2E

# Echoes what reached it: the Cookie header, the method and the body's length.
ECHO = """
import json, os
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def answer(self):
        size = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(size) if size else b""
        seen = {"cookie": self.headers.get("Cookie"), "method": self.command,
                "path": self.path, "body": len(body)}
        data = json.dumps(seen).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = answer

ThreadingHTTPServer(("0.0.0.0", int(os.environ["PORT"])), Handler).serve_forever()
"""


def through_router(e2e: E2E, host: str, path: str = "/", **kw: object) -> httpx.Response:
    url = f"http://127.0.0.1:{e2e.settings.router.http_port}{path}"
    headers = {"Host": host, **kw.pop("headers", {})}  # type: ignore[dict-item]
    method = str(kw.pop("method", "GET"))
    return httpx.request(method, url, headers=headers, timeout=10, **kw)  # type: ignore[arg-type]


def sign_in(e2e: E2E, host: str, username: str) -> httpx.Response:
    form = {"username": username, "password": e2e.admin_password, "next": "/orders"}
    return through_router(e2e, host, "/.ipaas/login", method="POST", data=form)


def test_a_private_app_opens_to_its_owner_only_and_never_sees_the_pass(e2e: E2E) -> None:
    app_id = e2e.create(e2e.repo(files={"Dockerfile": DOCKERFILE, "server.py": ECHO}))
    assert e2e.wait(app_id)["state"] == "running"
    name = e2e.get(app_id)["name"]
    host = f"{name}.{e2e.settings.base_domain}"
    assert through_router(e2e, host).status_code == 200  # public: one hop, no question

    r = httpx.patch(f"{e2e.api}/{app_id}", json={"visibility": "private"}, headers=e2e.headers)
    assert r.status_code == 200
    # A browser is sent to sign in on the app's own host; a script is refused.
    r = through_router(e2e, host, "/orders", headers={"Accept": "text/html"})
    assert r.status_code == 302 and r.headers["location"] == "/.ipaas/login?next=/orders"
    assert through_router(e2e, host).status_code == 401
    form = through_router(e2e, host, "/.ipaas/login?next=/orders")
    assert form.status_code == 200 and 'name="password"' in form.text

    # The app belongs to a user (the admin created it from a local path, which users may not).
    owner_id, owner = e2e.make_user()
    e2e.live.run(e2e.live.plane.stores.apps.set_fields(app_id, owner_id=owner_id))
    _, stranger = e2e.make_user()
    r = sign_in(e2e, host, stranger)
    assert r.status_code == 403 and "ipaas_pass" not in r.headers.get("set-cookie", "")
    assert sign_in(e2e, host, e2e.admin_name).status_code == 303  # admins may look
    r = sign_in(e2e, host, owner)
    assert r.status_code == 303 and r.headers["location"] == "/orders"
    token = r.cookies["ipaas_pass"]

    cookies = f"theme=dark; ipaas_pass={token}; lang=en"
    seen = through_router(e2e, host, "/orders", headers={"Cookie": cookies}).json()
    assert seen["path"] == "/orders" and seen["method"] == "GET"
    assert "ipaas_pass" not in (seen["cookie"] or "") and token not in json.dumps(seen)
    assert "theme=dark" in seen["cookie"] and "lang=en" in seen["cookie"]
    # A request with a body reaches the app whole after the check.
    seen = through_router(
        e2e, host, "/upload", method="POST", headers={"Cookie": cookies}, content=b"x" * 5000
    ).json()
    assert seen["method"] == "POST" and seen["body"] == 5000

    # Public again (by its owner now): the door is gone.
    owner_token = e2e.live.plane.stores.access_tokens.issue(owner_id, "user")
    as_owner = {"Authorization": f"Bearer {owner_token}"}
    r = httpx.patch(f"{e2e.api}/{app_id}", json={"visibility": "public"}, headers=as_owner)
    assert r.status_code == 200
    assert through_router(e2e, host).status_code == 200
