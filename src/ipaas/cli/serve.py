"""The serving half of `ipaas up`. The front end (Typer, the command modules) migrates the store,
builds missing base images and creates the first admin, then execs into this module: the platform
process keeps the same pid but none of the CLI's modules (about 6 MB of its idle RSS)."""

from __future__ import annotations

import asyncio
import gc
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import uvicorn


def main() -> None:
    # structlog renders tracebacks with Rich and Pygments whenever it can import them (≈6 MB);
    # the platform writes plain log lines, so it is kept from finding them.
    sys.modules.setdefault("rich", None)  # type: ignore[arg-type]
    import uvicorn

    from ipaas.auth.keys import SecretsMissing
    from ipaas.config import get_settings
    from ipaas.platform import api_process
    from ipaas.web.site import create_site

    settings = get_settings()
    try:
        plane = api_process(settings)
    except SecretsMissing as exc:
        print(f"ipaas cannot start: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    config = uvicorn.Config(
        create_site(plane),
        host=settings.host,
        port=settings.port,
        log_level="warning",
        access_log=False,
        ws="none",  # no WebSocket endpoints (logs follow over SSE): not loaded at all
    )
    server = uvicorn.Server(config)
    with asyncio.Runner(loop_factory=config.get_loop_factory()) as runner:
        runner.run(_serve_frozen(server))


async def _serve_frozen(server: uvicorn.Server) -> None:
    """Serve; once started, what exists then (modules, routes, the plane and what its start
    made) is put out of the garbage collector's sight. It lives as long as the process, and a
    full collection walked all of it: a viewer page of 1,000 rows makes ~100,000 objects that
    outlive the young collections, which set off a full one every few dozen pages, tens to
    hundreds of milliseconds each on a loaded host (the viewer's p99). Frozen, a full
    collection scans only what requests made since (a few milliseconds)."""
    serving = asyncio.create_task(server.serve())
    while not server.started and not serving.done():  # noqa: ASYNC110 - uvicorn sets a flag
        await asyncio.sleep(0.05)
    gc.collect()
    gc.freeze()
    await serving


if __name__ == "__main__":
    main()
