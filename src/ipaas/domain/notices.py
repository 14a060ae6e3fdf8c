"""Notices: which events tell a user something, and the pure rules around sending them
(throttling crash notices, retry delays, whose fault a failed delivery is). No I/O."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from ipaas.domain.quotas import KINDS, Amounts
from ipaas.domain.states import State


class NoticeKind(StrEnum):
    BUILD_FAILED = "build_failed"
    DEPLOY_FAILED = "deploy_failed"
    DEPLOY_SUCCEEDED = "deploy_succeeded"
    APP_CRASHED = "app_crashed"
    CRASH_DIGEST = "crash_digest"
    APP_RECOVERED = "app_recovered"
    QUOTA_NEARLY_USED = "quota_nearly_used"
    # For the databases add-on: templates are ready, its code records them.
    DATABASE_CREATED = "database_created"
    DATABASE_CREDENTIALS_ROTATED = "database_credentials_rotated"
    BACKUP_FAILED = "backup_failed"
    BACKUP_OVERDUE = "backup_overdue"
    TEST = "test"
    # Account mail: sent to the address in question whatever the preferences say.
    VERIFY_EMAIL = "verify_email"
    PASSWORD_RESET = "password_reset"


K = NoticeKind
ACCOUNT_KINDS = frozenset({K.VERIFY_EMAIL, K.PASSWORD_RESET})
# What a user may turn on or off (per channel); every other kind always goes.
CHOOSABLE_KINDS = tuple(k for k in K if k not in ACCOUNT_KINDS and k != K.TEST)
OFF_BY_DEFAULT = frozenset({K.DEPLOY_SUCCEEDED})
# A crash digest follows its crash notice's preference.
PREFERENCE_OF = {K.CRASH_DIGEST: K.APP_CRASHED}


def email_by_default(kind: NoticeKind) -> bool:
    return kind not in OFF_BY_DEFAULT


class Channel(StrEnum):
    EMAIL = "email"
    WEBHOOK = "webhook"


class DeliveryStatus(StrEnum):
    PENDING = "pending"  # waiting for its (next) attempt
    SENT = "sent"
    FAILED = "failed"  # refused for good, or temporary failures for too long


class NoticeState(StrEnum):
    NEW = "new"  # recorded with its event, not yet turned into deliveries
    DONE = "done"  # deliveries made (maybe none: preferences)
    DROPPED = "dropped"  # throttled, or no longer true when its time came


class WebhookMode(StrEnum):
    JSON = "json"  # the notice as JSON
    SLACK = "slack"  # {"text": ...}: Slack incoming webhooks and compatible chats
    DISCORD = "discord"  # {"content": ...}


def transition_notice(from_state: str | None, to_state: str, reason: str | None) -> K | None:
    """The notice an application's state change makes, if any."""
    head = (reason or "").split(":", 1)[0]
    if "cancelled" in head:
        return None  # the user asked for it
    failed = K.BUILD_FAILED if head.startswith("build") else K.DEPLOY_FAILED
    if to_state == State.FAILED:
        return failed
    if to_state == State.CRASHED and from_state == State.RUNNING:
        return K.APP_CRASHED
    if to_state != State.RUNNING:
        return None
    if from_state == State.CRASHED:
        return K.APP_RECOVERED
    if from_state == State.ROLLING_OUT and (reason or "").endswith("still serves"):
        return failed  # the rollout failed; the release from before goes on serving
    if from_state in (State.STARTING, State.ROLLING_OUT):
        return K.DEPLOY_SUCCEEDED
    return None


@dataclass(frozen=True)
class CrashWindow:
    """One app's crash throttle: when its last crash notice (or digest) went out, and how many
    crashes were kept quiet since."""

    opened_at: datetime | None = None
    suppressed: int = 0


@dataclass(frozen=True)
class CrashVerdict:
    send: bool
    window: CrashWindow
    earlier: int  # crashes kept quiet before this one, told in this notice


def on_crash(window: CrashWindow, now: datetime, throttle_s: float) -> CrashVerdict:
    """A crash is told when no crash notice went out within the throttle; else it is counted
    for the digest."""
    if window.opened_at is None or now - window.opened_at >= timedelta(seconds=throttle_s):
        return CrashVerdict(True, CrashWindow(now, 0), window.suppressed)
    return CrashVerdict(False, CrashWindow(window.opened_at, window.suppressed + 1), 0)


def digest_due(window: CrashWindow, now: datetime, throttle_s: float) -> bool:
    """The throttle's window is over and crashes were kept quiet in it: time for the digest
    (which opens a new window, so a loop that goes on gets one mail an hour)."""
    if window.opened_at is None or window.suppressed == 0:
        return False
    return now - window.opened_at >= timedelta(seconds=throttle_s)


def recovery_holds(state_now: str | None, crashed_since: bool) -> bool:
    """A "recovered" notice is true when its time comes only if the app still runs and did
    not crash in between (in a crash loop every restart looks like a recovery)."""
    return state_now == State.RUNNING and not crashed_since


def retry_delay_s(attempt: int, base_s: float, cap_s: float) -> float:
    """base, 2 x base, 4 x base ... capped: the wait after the `attempt`-th failure."""
    return float(min(base_s * 2 ** max(attempt - 1, 0), cap_s))


def smtp_temporary(code: int) -> bool:
    """RFC 5321: 4xx replies are transient (try again later), 5xx are permanent."""
    return 400 <= code < 500


def http_temporary(status: int) -> bool:
    """A webhook receiver's answer worth trying again: overloaded, rate-limited or broken
    for now. Other 4xx mean the request itself is refused."""
    return status in (408, 425, 429) or status >= 500


def nearly_used(before: Amounts, after: Amounts, limits: Amounts, ratio: float) -> list[str]:
    """The quota kinds this change takes across `ratio` of their limit (told once, when
    crossed, not on every later change)."""
    crossed = []
    for kind in KINDS:
        limit = getattr(limits, kind)
        if limit > 0 and getattr(before, kind) < ratio * limit <= getattr(after, kind):
            crossed.append(kind)
    return crossed
