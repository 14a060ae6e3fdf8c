"""The serving half of `ipaas up`. The front end (Typer, the command modules) migrates the store,
builds missing base images and creates the first admin, then execs into this module: the platform
process keeps the same pid but none of the CLI's modules (about 6 MB of its idle RSS)."""

from __future__ import annotations

import sys


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
    uvicorn.run(
        create_site(plane),
        host=settings.host,
        port=settings.port,
        log_level="warning",
        access_log=False,
        ws="none",  # no WebSocket endpoints (logs follow over SSE): not loaded at all
    )


if __name__ == "__main__":
    main()
