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
            response = case.call(headers=headers, timeout=30)
            where = f"{case.method} {case.formatted_path}"
            assert response.status_code < 500, f"{where}: {response.text}"
            if response.status_code >= 400:
                assert response.headers["content-type"][0].startswith("application/problem+json")
                assert response.json()["code"], where

        try:
            check()
        except Unsatisfiable:
            # An operation without inputs has no invalid variant to generate.
            assert mode == schemathesis.GenerationMode.NEGATIVE
