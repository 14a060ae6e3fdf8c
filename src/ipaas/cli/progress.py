"""Waiting for an app to settle, as people like to see it: states as they change, the build
log scrolling under a spinner while it builds, the URL (or the reason it failed) at the end."""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING, Any

from ipaas.cli.client import APPS, Client
from ipaas.cli.logstream import follow
from ipaas.cli.ui import console, err_console, state_text

if TYPE_CHECKING:
    from rich.console import Console
    from rich.status import Status

LONG_POLL_S = 30.0  # the server allows up to 60; shorter keeps proxies from cutting us off
BUILD_ACTIVE = frozenset({"queued", "running", "cancelling"})
BUILDING_STATES = frozenset({"pending", "building", "rolling_out"})
# Terminal for a wait: nothing the platform does next will make the app run by itself.
GIVEN_UP = frozenset({"failed", "crashed", "stopped", "deleting"})


class BuildLogFollower:
    """Prints one build's log from a thread while the main thread long-polls the state."""

    def __init__(self, client: Client, app_id: str, number: int, out: Console) -> None:
        self.client = client.clone()  # httpx clients are not shared between threads
        self.path = f"{APPS}/{app_id}/builds/{number}/log"
        self.number = number
        self.out = out
        self.finishing = threading.Event()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, name=f"build-log-{number}", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def _run(self) -> None:
        from rich.text import Text

        lines = follow(
            self.client, self.path, {}, done=self.finishing.is_set, reconnect=False, stop=self.stop
        )
        try:
            for n, line in enumerate(lines):
                if self.stop.is_set():
                    return
                if n == 0:  # a header only once there is a log to show
                    self.out.print(f"[dim]build {self.number} log:[/dim]")
                self.out.print(Text(str(line.get("line", "")), style="dim"))
        except Exception:  # the log is a nicety while waiting: the state decides the outcome
            pass
        finally:
            self.client.close()

    def finish(self, grace_s: float = 3.0) -> None:
        """Let the rest of the log arrive (the stream ends with the build), then stop."""
        self.finishing.set()
        self.thread.join(grace_s)
        self.stop.set()


class Waiter:
    def __init__(
        self, client: Client, app_id: str, out: Console, accepted: str | None = None
    ) -> None:
        self.client = client
        self.app_id = app_id
        self.out = out
        self.follower: BuildLogFollower | None = None
        # The state the request put the app in: shown even when the app moved on before the
        # first look (a start that fails at once was still a start).
        self.accepted = accepted

    def run(self, deadline: float, spinner: Status) -> int:
        etag: str | None = None
        last: tuple[str, str | None] | None = None
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return self._timed_out(last[0] if last else "unknown")
            wait = min(LONG_POLL_S, remaining) if etag else 0
            status, etag = self.client.status(self.app_id, etag, wait)
            if status is None:
                continue
            if self.accepted and status["state"] != self.accepted:
                self.out.print(f"→ {state_text(self.accepted)}")
            self.accepted = None
            if (status["state"], status.get("reason")) != last:
                last = (status["state"], status.get("reason"))
                self._changed(status, spinner)
            if status["state"] == "running":
                return self._running(status)
            if status["state"] in GIVEN_UP:
                return self._given_up(status)

    def _changed(self, status: dict[str, Any], spinner: Status) -> None:
        from rich.markup import escape

        state, reason = status["state"], status.get("reason")
        why = f" [dim]({escape(reason)})[/dim]" if reason else ""
        self.out.print(f"→ {state_text(state)}{why}")
        spinner.update(f"{state}…")
        if state in BUILDING_STATES:
            self._follow_newest_build()
        else:
            self.stop_following()

    def _follow_newest_build(self) -> None:
        builds = self.client.get(f"{APPS}/{self.app_id}/builds")
        newest = builds[0] if builds else None
        if newest is None or newest["status"] not in BUILD_ACTIVE:
            return  # a redeploy without a build, or the build is already over
        if self.follower and self.follower.number == newest["number"]:
            return
        self.stop_following()
        self.follower = BuildLogFollower(self.client, self.app_id, newest["number"], self.out)
        self.follower.start()

    def stop_following(self) -> None:
        if self.follower is not None:
            self.follower.finish()
            self.follower = None

    def _running(self, status: dict[str, Any]) -> int:
        self.stop_following()
        url = status.get("url")
        self.out.print(f"[green]running[/green] at [bold]{url}[/bold]" if url else "running")
        return 0

    def _given_up(self, status: dict[str, Any]) -> int:
        from rich.markup import escape

        self.stop_following()
        reason = status.get("reason") or "no reason given"
        err_console().print(f"[red]{status['state']}: {escape(reason)}[/red]")
        return 1

    def _timed_out(self, state: str) -> int:
        self.stop_following()
        err_console().print(
            f"[red]error: timed out; the app is still {state} "
            f"(see `ipaas apps status {self.app_id}`)[/red]"
        )
        return 1


def wait_for_app(client: Client, app_id: str, timeout_s: float, accepted: str | None = None) -> int:
    """Follow the app until it runs (0) or gives up (1), or the timeout passes (1)."""
    out = console()
    waiter = Waiter(client, app_id, out, accepted)
    try:
        with out.status("waiting…") as spinner:
            try:
                return waiter.run(time.monotonic() + timeout_s, spinner)
            finally:
                waiter.stop_following()
    except KeyboardInterrupt:
        # Only the waiting stops: the operation goes on on the server.
        err_console().print(f"no longer waiting; see `ipaas apps status {app_id}`")
        return 130
