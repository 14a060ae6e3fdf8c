"""The quota decision (pure): every kind, growing and shrinking, limits, per-app ceilings."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ipaas.config import Settings
from ipaas.domain.quotas import KINDS, Amounts, PerApp, decide, footprint, limits_for, remaining

LIMITS = Amounts(apps=3, memory_mb=2048, cpus=2.0, volumes=4)


def one(kind: str, value: float) -> Amounts:
    return Amounts(**{kind: value})  # type: ignore[arg-type]


@pytest.mark.parametrize("kind", KINDS)
def test_each_kind_may_reach_its_limit_but_not_pass_it(kind: str) -> None:
    limit = getattr(LIMITS, kind)
    used = one(kind, limit - 1)
    assert decide(used, one(kind, 1), LIMITS).ok
    refused = decide(used, one(kind, 2), LIMITS)
    assert not refused.ok and refused.exceeded == (kind,)
    assert getattr(refused.remaining, kind) == 1


def test_every_exceeded_kind_is_named_at_once() -> None:
    for kinds in itertools.chain.from_iterable(
        itertools.combinations(KINDS, n) for n in range(1, 5)
    ):
        change = Amounts(**{k: getattr(LIMITS, k) + 1 for k in kinds})  # type: ignore[arg-type]
        assert decide(Amounts(), change, LIMITS).exceeded == kinds


def test_shrinking_is_always_allowed_even_over_a_lowered_limit() -> None:
    used = Amounts(apps=5, memory_mb=4096, cpus=4.0, volumes=8)  # an admin lowered the limits
    assert decide(used, Amounts(memory_mb=-512, cpus=-1.0, volumes=-1), LIMITS).ok
    assert decide(used, Amounts(), LIMITS).ok
    grow_one = decide(used, Amounts(memory_mb=-512, volumes=1), LIMITS)
    assert grow_one.exceeded == ("volumes",)


def test_remaining_never_goes_below_zero() -> None:
    used = Amounts(apps=5, memory_mb=100, cpus=2.5, volumes=0)
    assert remaining(used, LIMITS) == Amounts(apps=0, memory_mb=1948, cpus=0.0, volumes=4)


def test_cpu_decimals_do_not_trip_the_limit() -> None:
    used = Amounts(cpus=0.1) + Amounts(cpus=0.2) + Amounts(cpus=0.7)  # 1.0000000000000002
    assert decide(used, Amounts(cpus=1.0), LIMITS).ok


def test_per_app_ceiling() -> None:
    ceiling = PerApp(memory_mb=1024, cpus=1.0)
    app = Amounts(apps=1, memory_mb=1025, cpus=1.0)
    d = decide(Amounts(), app, LIMITS, app, ceiling)
    assert not d.ok and d.too_large == ("memory_mb",) and d.exceeded == ()
    app = Amounts(apps=1, memory_mb=1024, cpus=1.5)
    assert decide(Amounts(), app, LIMITS, app, ceiling).too_large == ("cpus",)
    app = Amounts(apps=1, memory_mb=1024, cpus=1.0)
    assert decide(Amounts(), app, LIMITS, app, ceiling).ok
    # An app over a ceiling lowered since: other changes, and shrinking, still go through.
    big = Amounts(apps=1, memory_mb=4096, cpus=1.0)
    assert decide(big, Amounts(volumes=1), LIMITS, big, ceiling).ok
    assert decide(big, Amounts(memory_mb=-1024), LIMITS, big - Amounts(memory_mb=1024), ceiling).ok
    assert decide(big, Amounts(memory_mb=1), LIMITS, big, ceiling).too_large == ("memory_mb",)


def test_an_unset_limit_counts_as_the_runtime_default() -> None:
    assert footprint({}, 0, 512, 1.0) == Amounts(1, 512, 1.0, 0)
    assert footprint({"memory_mb": 128}, 2, 512, 1.0) == Amounts(1, 128, 1.0, 2)
    assert footprint({"cpus": 0.25}, 0, 512, 1.0) == Amounts(1, 512, 0.25, 0)


def test_admin_overrides_replace_only_the_kinds_they_set() -> None:
    assert limits_for(LIMITS, {"apps": 10, "memory_mb": None}) == Amounts(10, 2048, 2.0, 4)
    assert limits_for(LIMITS, {}) == LIMITS
    assert limits_for(LIMITS, {"cpus": 0}) == Amounts(3, 2048, 0.0, 4)


def test_the_old_app_limit_setting_still_works() -> None:
    assert Settings(max_apps_per_user=7).quota.apps == 7  # type: ignore[call-arg]
    assert Settings(max_apps_per_user=7, quota={"apps": 9}).quota.apps == 9  # type: ignore[call-arg]
    assert Settings().quota.apps == 100


amount = st.builds(
    Amounts,
    st.integers(0, 50),
    st.integers(0, 10_000),
    st.sampled_from([0.0, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 3.5]),
    st.integers(0, 20),
)


@given(used=amount, change=amount, limits=amount)
def test_ok_exactly_when_no_total_goes_over(
    used: Amounts, change: Amounts, limits: Amounts
) -> None:
    d = decide(used, change, limits)
    total = used + change
    over = [k for k in KINDS if getattr(change, k) > 0 and getattr(total, k) > getattr(limits, k)]
    assert d.ok == (not over) and list(d.exceeded) == over
    if d.ok:
        # Whatever was admitted fits in what remained.
        assert all(getattr(change, k) <= getattr(d.remaining, k) for k in KINDS)
