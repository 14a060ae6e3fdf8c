"""The pure parts of log reading: the SSE framing and --since values."""

from __future__ import annotations

from ipaas.cli.client import parse_sse
from ipaas.cli.logstream import since_param


def test_sse_frames_ids_multiline_data_and_comments() -> None:
    raw = [": keep-alive", "id: c1", 'data: {"line": "a"}', "", "data: x", "data:y", "", ""]
    assert list(parse_sse(iter(raw))) == [("c1", '{"line": "a"}'), ("c1", "x\ny")]


def test_an_unterminated_last_event_is_still_delivered() -> None:
    assert list(parse_sse(iter(["id: 7", "data: last"]))) == [("7", "last")]


def test_since_values() -> None:
    assert since_param("15m") == "now-15m"
    assert since_param("2h") == "now-2h"
    assert since_param("now-5m") == "now-5m"
    assert since_param("2026-01-01T00:00:00Z") == "2026-01-01T00:00:00Z"
    assert since_param("yesterday") is None
    assert since_param("15 minutes") is None
