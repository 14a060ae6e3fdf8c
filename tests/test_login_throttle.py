"""The login throttle's bookkeeping on a fake clock: limits, doubling delays, resets, memory."""

from __future__ import annotations

from ipaas.auth.throttle import LoginThrottle, ThrottlePolicy, retry_after_header

USER = ("user:alice", "ip:10.0.0.1")


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def throttle(clock: Clock, **policy: float) -> LoginThrottle:
    settings = {"max_failures": 3, "window_s": 60.0, "base_delay_s": 10.0, "max_delay_s": 40.0}
    settings.update(policy)
    user = ThrottlePolicy(**settings)  # type: ignore[arg-type]
    address = ThrottlePolicy(**{**settings, "max_failures": 10})  # type: ignore[arg-type]
    return LoginThrottle({"user": user, "ip": address}, clock=clock)


def fail(t: LoginThrottle, keys: tuple[str, ...] = USER, times: int = 1) -> None:
    for _ in range(times):
        assert t.admit(keys) is None
        t.failed(keys)


def test_the_attempt_after_the_limit_waits_and_the_wait_doubles_up_to_the_cap() -> None:
    clock = Clock()
    t = throttle(clock)
    fail(t, times=3)
    assert t.admit(USER) == 10.0
    clock.now += 10.0
    fail(t, times=3)
    assert t.admit(USER) == 20.0
    clock.now += 20.0
    fail(t, times=3)
    assert t.admit(USER) == 40.0
    clock.now += 40.0
    fail(t, times=3)
    assert t.admit(USER) == 40.0  # capped


def test_the_wait_counts_down() -> None:
    clock = Clock()
    t = throttle(clock)
    fail(t, times=3)
    clock.now += 4.0
    assert t.admit(USER) == 6.0
    clock.now += 6.0
    assert t.admit(USER) is None


def test_failures_older_than_the_window_are_forgotten() -> None:
    clock = Clock()
    t = throttle(clock)
    fail(t, times=2)
    clock.now += 61.0
    fail(t, times=2)
    assert t.admit(USER) is None


def test_a_quiet_window_after_a_lockout_forgives_the_doubling() -> None:
    clock = Clock()
    t = throttle(clock)
    fail(t, times=3)
    clock.now += 10.0 + 61.0
    fail(t, times=3)
    assert t.admit(USER) == 10.0


def test_a_success_resets_the_username_but_not_the_address() -> None:
    clock = Clock()
    t = throttle(clock)
    fail(t, times=2)
    assert t.admit(USER) is None
    t.succeeded(USER, reset=("user:alice",))
    fail(t, times=2)  # the username starts from zero again
    assert t.admit(USER) is None
    t.failed(USER)
    assert t.admit(USER) == 10.0
    # The address counted all five failures: five more from it (other names) lock it too.
    for i in range(5):
        fail(t, (f"user:u{i}", "ip:10.0.0.1"))
    assert t.admit(("user:fresh", "ip:10.0.0.1")) == 10.0
    assert t.admit(("user:fresh", "ip:10.0.0.2")) is None


def test_another_username_and_address_are_not_affected() -> None:
    clock = Clock()
    t = throttle(clock)
    fail(t, times=3)
    assert t.admit(USER) is not None
    assert t.admit(("user:bob", "ip:10.0.0.2")) is None
    # alice from another address is still alice: locked.
    assert t.admit(("user:alice", "ip:10.0.0.2")) is not None


def test_concurrent_attempts_in_flight_cannot_exceed_the_limit() -> None:
    clock = Clock()
    t = throttle(clock)
    admitted = [t.admit(USER) is None for _ in range(10)]
    assert admitted.count(True) == 3  # the rest are refused before any hash is checked
    for _ in range(3):
        t.failed(USER)
    assert t.admit(USER) == 10.0


def test_a_released_attempt_counts_for_nothing() -> None:
    clock = Clock()
    t = throttle(clock)
    for _ in range(5):
        assert t.admit(USER) is None
        t.release(USER)
    assert t.admit(USER) is None


def test_memory_stays_bounded_under_a_flood_of_names() -> None:
    clock = Clock()
    policy = ThrottlePolicy(3, 60.0, 10.0, 40.0)
    t = LoginThrottle({"user": policy, "ip": policy}, clock=clock, max_entries=100)
    for i in range(1000):
        fail(t, (f"user:n{i}",))
    assert len(t._entries) <= 100


def test_retry_after_is_whole_seconds_rounded_up() -> None:
    assert retry_after_header(0.2) == "1"
    assert retry_after_header(9.01) == "10"
    assert retry_after_header(30.0) == "30"
