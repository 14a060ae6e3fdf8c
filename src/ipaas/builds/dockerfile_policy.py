"""What a user's Dockerfile may not do: `ADD <url>`, which the engine fetches from the host.

The classic builder downloads `ADD http(s)://…` sources in dockerd itself, in the host's network
namespace, so the build network and the host firewall do not apply: such a line could read the
API, Caddy's admin API or any loopback service into the image. Users fetch URLs in a `RUN` step
instead (curl, wget, pip), which runs in a build container on the firewalled build network.
A source with a variable (`ADD $SRC /x`) is refused too: the engine expands it before deciding
whether it is a URL.
"""

from __future__ import annotations

import json
import re

from ipaas.builds.base import BuildFailed

_DIRECTIVE_RE = re.compile(r"^#\s*([A-Za-z]+)\s*=\s*(\S*)\s*$")


def logical_lines(text: str) -> list[str]:
    """Instructions with continuation lines joined, comments and blank lines dropped; honours
    the `# escape=` parser directive."""
    escape = "\\"
    lines = text.splitlines()
    for line in lines:  # parser directives come first, before any other line
        match = _DIRECTIVE_RE.match(line.strip())
        if not match:
            break
        if match.group(1).lower() == "escape" and match.group(2):
            escape = match.group(2)[0]
    result: list[str] = []
    current = ""
    for raw in lines:
        stripped = raw.strip()
        if not stripped or stripped.startswith("#"):
            continue  # also inside a continuation, as the engine does
        if stripped.endswith(escape):
            current += stripped[:-1] + " "
            continue
        result.append(current + stripped)
        current = ""
    if current.strip():
        result.append(current.strip())
    return result


def add_sources(instruction: str) -> list[str] | None:
    """The sources of an ADD (also under ONBUILD); None for any other instruction."""
    words = instruction.split(None, 1)
    keyword = words[0].upper() if words else ""
    rest = words[1] if len(words) > 1 else ""
    if keyword == "ONBUILD":
        return add_sources(rest)
    if keyword != "ADD":
        return None
    rest = rest.strip()
    while rest.startswith("--"):  # --chown=, --chmod=, --checksum= come before the sources
        rest = rest.split(None, 1)[1] if len(rest.split(None, 1)) > 1 else ""
    return _arguments(rest)[:-1]


def _arguments(rest: str) -> list[str]:
    if rest.lstrip().startswith("["):
        try:
            parsed = json.loads(rest)
        except ValueError:
            parsed = None
        if isinstance(parsed, list):
            return [str(item) for item in parsed]
    return rest.split()


def check_user_dockerfile(text: str) -> None:
    """Raise a user-fault BuildFailed (`add_url_not_allowed`) for an ADD of a URL."""
    for instruction in logical_lines(text):
        for source in add_sources(instruction) or []:
            if "://" in source or "$" in source:
                raise BuildFailed(
                    f"ADD {source}: ADD may only copy files of the repository (a URL, or a "
                    "variable that could hold one, is fetched by the engine from the host "
                    "itself); download in a RUN step instead (curl, wget, pip)",
                    user_fault=True,
                    code="add_url_not_allowed",
                )
