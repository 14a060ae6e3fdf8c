"""Deploys end in a state the user can act on, whatever breaks underneath (no runtime here: a
runtime that fails in a way nobody planned for stands in for a platform bug)."""

from __future__ import annotations

import uuid
from typing import Any

from ipaas.apps import operations
from ipaas.domain.states import State
from ipaas.platform import Platform
from ipaas.store.models import Application, Release, new_id
from tests.conftest import UserMaker


class BrokenRuntime:
    """Only what a deploy reaches before it breaks."""

    async def start(self, spec: Any) -> Any:
        raise KeyError("NetworkSettings")  # say, an engine answer of an unexpected shape


async def test_a_deploy_that_breaks_unexpectedly_ends_failed_with_the_reason(
    core: Platform, make_user: UserMaker
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
    await core.apps.create(app)
    await core.builds.add_release(
        Release(
            app_id=app.id,
            number=1,
            build_id=new_id(),
            commit="a" * 40,
            image_id="sha256:x",
            image_tag="x:r1",
        )
    )
    await core.apps.transition(app.id, State.BUILDING, "test")
    await core.apps.transition(app.id, State.STARTING, "test", target_release=1)
    runtime, core.runtime = core.runtime, BrokenRuntime()  # type: ignore[assignment]
    try:
        await operations.deploy(core, app.id)
    finally:
        core.runtime = runtime
    after = await core.apps.get(app.id)
    assert after.state == State.FAILED
    assert "failed while starting the release" in (after.state_reason or "")
    assert "NetworkSettings" in (after.state_reason or "")
