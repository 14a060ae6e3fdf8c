"""Property-based run of the API's own OpenAPI schema against a real server: no 5xx anywhere."""

from __future__ import annotations

import asyncio
import itertools
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import schemathesis
import uvicorn
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable

from ipaas.api.app import create_app
from ipaas.auth.passwords import hash_password
from ipaas.store.migrate import upgrade
from tests.conftest import make_settings
from tests.factories import running_app
from tests.fakes import fake_plane
from tests.support import free_port

# Fuzzes every operation against a live server (~20 s): in `make test`, not in `make fast`.
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def live_api(
    database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, str]]:
    upgrade(database_url)
    settings = make_settings(Path(tmp_path_factory.mktemp("st")), database_url)
    plane = fake_plane(settings)

    async def make_user() -> str:
        user = await plane.stores.users.create("fuzzer", hash_password("fuzz fuzz fuzz"), "user")
        for _ in range(3):  # real apps, with releases and builds, for the links to reach
            await running_app(plane, user.id, releases=2)
        await plane.stores.engine.dispose()  # its connections belong to this loop only
        return plane.stores.access_tokens.issue(user.id, "user")

    token = asyncio.run(make_user())
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(create_app(plane), host="127.0.0.1", port=port, log_level="error")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{port}"
    for _ in range(100):
        try:
            if httpx.get(f"{base}/healthz").status_code == 200:
                break
        except httpx.TransportError:
            time.sleep(0.05)
    yield {"base": base, "token": token}
    server.should_exit = True
    thread.join(10)


def check_answer(response: schemathesis.Response, case: schemathesis.Case) -> None:
    """No 5xx; every refusal is problem+json with a machine-readable code."""
    where = f"{case.method} {case.formatted_path}"
    assert response.status_code < 500, f"{where}: {response.text}"
    if response.status_code >= 400:
        assert response.headers["content-type"][0].startswith("application/problem+json")
        assert response.json()["code"], where


def test_no_server_errors(live_api: dict[str, str]) -> None:
    """Every operation, with generated (valid and invalid) inputs, never answers 5xx."""
    schema = schemathesis.openapi.from_url(f"{live_api['base']}/openapi.json")
    headers = {"Authorization": f"Bearer {live_api['token']}"}
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) > 20
    modes = [schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE]
    for operation, mode in itertools.product(operations, modes):

        @given(case=operation.as_strategy(generation_mode=mode))
        @settings(max_examples=20, deadline=None, suppress_health_check=list(HealthCheck))
        def check(case: schemathesis.Case) -> None:
            check_answer(case.call(headers=headers, timeout=30), case)

        try:
            check()
        except Unsatisfiable:
            # An operation without inputs has no invalid variant to generate.
            assert mode == schemathesis.GenerationMode.NEGATIVE


def test_sequences_through_real_apps_never_answer_5xx(live_api: dict[str, str]) -> None:
    """Stateful: the schema's links lead from listing (or creating) apps to every operation on
    one of them, and from its builds and releases to each, with the ids of real ones."""
    schema = schemathesis.openapi.from_url(f"{live_api['base']}/openapi.json")
    schema = schema.include(path_regex="^/api/v1/applications")  # the rest is stateless
    headers = {"Authorization": f"Bearer {live_api['token']}"}
    reached: set[str] = set()

    class Sequences(schema.as_state_machine()):  # type: ignore[misc]
        def get_call_kwargs(self, case: schemathesis.Case) -> dict[str, object]:
            return {"headers": headers, "timeout": 30}

        def validate_response(
            self, response: schemathesis.Response, case: schemathesis.Case, **_: object
        ) -> None:
            check_answer(response, case)
            if response.status_code < 300 and "{app_id}" in case.path:
                reached.add(f"{case.method} {case.path}")

    Sequences.run(
        settings=settings(
            max_examples=40,
            stateful_step_count=6,
            # One fixed sequence per version of the schema: a random one sometimes spent all
            # its steps on refused creates and never followed a link (flaky, not a finding).
            derandomize=True,
            deadline=None,
            suppress_health_check=list(HealthCheck),
        )
    )
    # The links took the run to the code behind real apps (random ids would only meet 404s).
    assert len(reached) >= 3, reached


def test_links_lead_from_apps_to_every_operation_on_one(live_api: dict[str, str]) -> None:
    schema = httpx.get(f"{live_api['base']}/openapi.json").json()
    paths = schema["paths"]
    on_an_app = {
        op["operationId"]
        for path, ops in paths.items()
        if path.startswith("/api/v1/applications/{app_id}")
        for op in ops.values()
    }
    for method, status in (("post", "201"), ("get", "200")):
        links = paths["/api/v1/applications"][method]["responses"][status]["links"]
        assert set(links) == on_an_app
        assert {link["parameters"]["app_id"] for link in links.values()} <= {
            "$response.body#/id",
            "$response.body#/items/0/id",
        }
    builds = paths["/api/v1/applications/{app_id}/builds"]["get"]["responses"]["200"]["links"]
    assert any("build_log" in target for target in builds)
