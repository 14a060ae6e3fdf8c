"""What the deployer and the warden rely on from a runtime, checked on Docker and on the fake."""

from __future__ import annotations

import pytest

from ipaas.runtime.base import Runtime
from tests.fakes import FakeRuntime
from tests.runtime.conftest import SpecFactory

SWARM = pytest.param("swarm", marks=[pytest.mark.docker, pytest.mark.swarm, pytest.mark.slow])


@pytest.fixture(params=["fake", pytest.param("docker", marks=pytest.mark.docker), SWARM])
def engine(request: pytest.FixtureRequest) -> Runtime:
    if request.param == "fake":
        return FakeRuntime()
    found: Runtime = request.getfixturevalue(
        "swarm_runtime" if request.param == "swarm" else "runtime"
    )
    return found


@pytest.fixture
def spec(request: pytest.FixtureRequest, engine: Runtime) -> SpecFactory:
    if isinstance(engine, FakeRuntime):
        from ipaas.runtime.base import ContainerSpec

        def fake_spec(**fields: object) -> ContainerSpec:
            base: dict[str, object] = {
                "app_id": "app-" + request.node.name[-8:],
                "app_name": "contract",
                "owner_id": "owner",
                "release": 1,
                "image": "img",
                "port": 8080,
            }
            return ContainerSpec(**{**base, **fields})  # type: ignore[arg-type]

        return fake_spec
    swarm = request.node.callspec.params.get("engine") == "swarm"
    made: SpecFactory = request.getfixturevalue("swarm_spec" if swarm else "make_spec")
    return made


async def test_a_started_container_runs_and_is_listed_for_its_app(
    engine: Runtime, spec: SpecFactory
) -> None:
    s = spec()
    info = await engine.start(s)
    assert info.app_id == s.app_id and info.release == 1 and info.state == "running"
    assert info.ip_address or info.host_port
    listed = await engine.list_containers(s.app_id)
    assert [c.id for c in listed] == [info.id]
    assert (await engine.inspect(info.id)) is not None
    assert info.id in {c.id for c in await engine.list_containers()}


async def test_a_second_release_runs_beside_the_first(engine: Runtime, spec: SpecFactory) -> None:
    first = await engine.start(spec())
    second = await engine.start(spec(app_id=first.app_id, release=2))
    assert {c.id for c in await engine.list_containers(first.app_id)} == {first.id, second.id}
    assert second.release == 2


async def test_a_stopped_container_stays_listed_but_not_running(
    engine: Runtime, spec: SpecFactory
) -> None:
    info = await engine.start(spec())
    await engine.stop(info.id, 2)
    after = await engine.inspect(info.id)
    assert after is not None and after.state == "exited"
    assert after.finished_at is not None
    assert [c.state for c in await engine.list_containers(info.app_id)] == ["exited"]


async def test_removed_containers_are_gone_and_removing_twice_is_harmless(
    engine: Runtime, spec: SpecFactory
) -> None:
    info = await engine.start(spec())
    await engine.remove(info.id)
    await engine.remove(info.id)
    assert await engine.inspect(info.id) is None
    assert await engine.list_containers(info.app_id) == []


async def test_unknown_containers_have_no_stats_and_no_record(engine: Runtime) -> None:
    assert await engine.inspect("0" * 64) is None
    assert await engine.stats("0" * 64) is None
