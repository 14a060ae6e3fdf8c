"""Alembic migrations, run programmatically (`ipaas migrate`, and at `ipaas up`).

Imported only where used: Alembic is heavy and the running server does not need it.
"""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

MIGRATIONS = Path(__file__).parent / "migrations"


def _config(url: str):  # type: ignore[no-untyped-def]
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["database_url"] = url
    return cfg


def upgrade(url: str, revision: str = "head") -> None:
    """Bring the database at `url` to `revision`. Safe to call from inside an event loop."""
    from alembic import command

    _prepare_sqlite_dir(url)
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        command.upgrade(_config(url), revision)
        return
    # env.py runs its own event loop; give it a thread of its own.
    errors: list[BaseException] = []

    def run() -> None:
        try:
            command.upgrade(_config(url), revision)
        except BaseException as exc:  # noqa: BLE001 - re-raised below in the caller's thread
            errors.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
    if errors:
        raise errors[0]


def _prepare_sqlite_dir(url: str) -> None:
    from ipaas.store.db import secure_sqlite_file

    secure_sqlite_file(url)  # the first process to touch the file makes it private
