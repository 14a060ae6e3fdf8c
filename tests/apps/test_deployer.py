"""Deploys end in a state the user can act on, whatever breaks underneath (a runtime that fails
in a way nobody planned for stands in for a platform bug)."""

from __future__ import annotations

import uuid
from typing import Any

from ipaas.apps.background import Background
from ipaas.apps.deployer import Deployer
from ipaas.domain.hosts import HostNames
from ipaas.domain.states import State
from ipaas.platform import ControlPlane
from ipaas.store.models import Application, Release, new_id
from tests.conftest import UserMaker


class BrokenRuntime:
    """Only what a deploy reaches before it breaks."""

    async def start(self, spec: Any) -> Any:
        raise KeyError("NetworkSettings")  # say, an engine answer of an unexpected shape


async def test_a_deploy_that_breaks_unexpectedly_ends_failed_with_the_reason(
    core: ControlPlane, make_user: UserMaker
) -> None:
    user = await make_user()
    app = Application(
        id=new_id(),
        name=f"ops-{uuid.uuid4().hex[:8]}",
        owner_id=user["id"],
        repo="https://x.invalid/r.git",
        state=State.PENDING.value,
        envs_encrypted="",
    )
    await core.stores.apps.create(app)
    await core.stores.builds.add_release(
        Release(
            app_id=app.id,
            number=1,
            build_id=new_id(),
            commit="a" * 40,
            image_id="sha256:x",
            image_tag="x:r1",
        )
    )
    await core.stores.apps.transition(app.id, State.BUILDING, "test")
    await core.stores.apps.transition(app.id, State.STARTING, "test", target_release=1)
    deployer = Deployer(
        apps=core.stores.apps,
        builds=core.stores.builds,
        runtime=BrokenRuntime(),  # type: ignore[arg-type]
        router=core.adapters.router,
        cipher=core.stores.cipher,
        settings=core.settings.runtime,
        hosts=HostNames(core.settings.base_domain),
        background=Background(),
    )
    await deployer.deploy(app.id)
    after = await core.stores.apps.get(app.id)
    assert after.state == State.FAILED
    assert "failed while starting the release" in (after.state_reason or "")
    assert "NetworkSettings" in (after.state_reason or "")
