"""A real API server on a free port (in a thread, with its own event loop) for the user CLI.

The platform has no builder or runtime: tests move apps through their states with
`live.run(live.plane.stores.apps.transition(...))`, on the server's own loop so that long-polls
wake at once.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, TypeVar

import pytest
import typer
from typer.testing import CliRunner, Result

from ipaas.auth.passwords import hash_password
from ipaas.cli.apps import apps_app
from ipaas.cli.db import db_app
from ipaas.cli.session import register_session_commands
from ipaas.domain.states import State
from ipaas.store.migrate import upgrade
from tests.conftest import make_settings
from tests.fakes import fake_plane
from tests.live import Live as BaseLive
from tests.live import start_live

T = TypeVar("T")
PASSWORD = "correct horse battery"


class Live(BaseLive):
    def make_user(self) -> tuple[str, str]:
        username = f"u{uuid.uuid4().hex[:10]}"
        user = self.run(self.plane.stores.users.create(username, hash_password(PASSWORD), "user"))
        return username, user.id

    def app_id(self, owner_id: str, name: str) -> str | None:
        rows, _ = self.run(self.plane.stores.apps.list(owner_id, limit=500))
        return next((a.id for a in rows if a.name == name), None)

    def drive(self, app_id: str, *states: State, **final: Any) -> None:
        for i, state in enumerate(states):
            fields = final if i == len(states) - 1 else {}
            self.run(self.plane.stores.apps.transition(app_id, state, f"test: {state}", **fields))

    def drive_when_created(
        self, owner_id: str, name: str, *states: State, **final: Any
    ) -> threading.Thread:
        """In the background: wait for the app to exist, then move it through `states`."""

        def work() -> None:
            for _ in range(200):
                app_id = self.app_id(owner_id, name)
                if app_id:
                    break
                time.sleep(0.05)
            else:
                raise AssertionError(f"{name} was never created")
            for i, state in enumerate(states):
                time.sleep(0.2)  # let the CLI see each state
                fields = final if i == len(states) - 1 else {}
                self.run(
                    self.plane.stores.apps.transition(app_id, state, f"test: {state}", **fields)
                )

        thread = threading.Thread(target=work, daemon=True)
        thread.start()
        return thread


@pytest.fixture(scope="module")
def live(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    upgrade(database_url)
    # Replicas above 1 need a Swarm runtime (in name only here: the tests play the runtime).
    settings = make_settings(
        Path(tmp_path_factory.mktemp("cli")),
        database_url,
        runtime={"kind": "swarm", "max_replicas": 5},
    )
    started = start_live(fake_plane(settings))
    live = Live(**{f.name: getattr(started, f.name) for f in fields(started)})
    yield live
    live.stop()


def root_app() -> typer.Typer:
    """The CLI as cli/main.py mounts it."""
    root = typer.Typer()
    root.add_typer(apps_app, name="apps")
    root.add_typer(db_app, name="db")
    register_session_commands(root)
    return root


@dataclass
class Cli:
    live: Live
    config: Path
    username: str = ""
    user_id: str = ""

    def __call__(self, *args: str, input: str | None = None, **env: str | None) -> Result:
        environ: dict[str, str | None] = {
            "IPAAS_CLI_CONFIG": str(self.config),
            "IPAAS_URL": None,
            "IPAAS_TOKEN": None,
            "COLUMNS": "200",
            **env,
        }
        return CliRunner().invoke(root_app(), list(args), input=input, env=environ)

    def login(self) -> Result:
        self.username, self.user_id = self.live.make_user()
        return self(
            "login", "--url", self.live.base, "--username", self.username, "--password", PASSWORD
        )


@pytest.fixture
def cli(live: Live, tmp_path: Path) -> Cli:
    """A CLI with its own config file, not logged in yet."""
    return Cli(live, tmp_path / "conf" / "cli.json")


@pytest.fixture
def user_cli(cli: Cli) -> Cli:
    """A CLI logged in as a fresh user."""
    result = cli.login()
    assert result.exit_code == 0, result.output
    return cli


def unique_name(prefix: str = "app") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"
