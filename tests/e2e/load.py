"""Client load through Caddy while a platform operation runs: every answer that is not a 200
is kept, so a test can say that no request failed (and what the app answered meanwhile)."""

from __future__ import annotations

import threading
import time
from types import TracebackType

import httpx


class ClientLoad:
    """Requests one after another to the app's host, from a thread, until the block ends."""

    def __init__(self, http_port: int, host: str, path: str = "/") -> None:
        self.url = f"http://127.0.0.1:{http_port}{path}"
        self.host = host
        self.failures: list[str] = []
        self.failed_at: list[float] = []  # when each failed request was sent (monotonic)
        self.slow: list[tuple[float, float]] = []  # (sent, seconds) of answers over 1 s
        self.seen: set[str] = set()  # the bodies of the answers, stripped
        self.answered = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"load-{host}", daemon=True)

    def __enter__(self) -> ClientLoad:
        self._thread.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop.set()
        self._thread.join(30)

    def _run(self) -> None:
        with httpx.Client(timeout=10) as client:
            while not self._stop.is_set():
                sent = time.monotonic()
                try:
                    r = client.get(self.url, headers={"Host": self.host})
                except httpx.HTTPError as exc:
                    self._failed(sent, repr(exc))
                    continue
                self.answered += 1
                if (took := time.monotonic() - sent) > 1.0:
                    self.slow.append((sent, took))
                self.seen.add(r.text.strip())
                if r.status_code != 200:
                    self._failed(sent, f"{r.status_code}: {r.text[:80]}")

    def failed_but_one_cut(self, at: float, within_s: float = 1.0) -> list[str]:
        """The failures, but for one response cut (the connection closed under it) of a
        request sent within `within_s` of `at`: what a task killed at `at` was answering."""
        failures = list(zip(self.failed_at, self.failures, strict=True))
        cut = next(
            (i for i, (t, f) in enumerate(failures)
             if "peer closed connection" in f and abs(t - at) < within_s),
            None,
        )  # fmt: skip
        return [f for i, (_, f) in enumerate(failures) if i != cut]

    def _failed(self, sent: float, what: str) -> None:
        self.failed_at.append(sent)
        self.failures.append(what)
