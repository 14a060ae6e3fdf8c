"""Quota decisions: what a user uses plus what they ask for, against their limits. Pure."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

KINDS = ("apps", "memory_mb", "cpus", "volumes")


@dataclass(frozen=True)
class Amounts:
    """A quantity of each quota kind: a usage, a change, a limit or what remains."""

    apps: int = 0
    memory_mb: int = 0
    cpus: float = 0.0
    volumes: int = 0

    def __add__(self, other: Amounts) -> Amounts:
        return _combine(self, other, lambda a, b: a + b)

    def __sub__(self, other: Amounts) -> Amounts:
        return _combine(self, other, lambda a, b: a - b)

    def as_dict(self) -> dict[str, float]:
        return {kind: getattr(self, kind) for kind in KINDS}


def _combine(x: Amounts, y: Amounts, op: Callable[[float, float], float]) -> Amounts:
    values: dict[str, Any] = {}
    for kind in KINDS:
        value = _round(op(getattr(x, kind), getattr(y, kind)))
        values[kind] = value if kind == "cpus" else int(value)
    return Amounts(**values)


@dataclass(frozen=True)
class PerApp:
    """The most one app may ask for, whatever the user's totals."""

    memory_mb: int
    cpus: float


@dataclass(frozen=True)
class Decision:
    exceeded: tuple[str, ...]  # kinds whose total would go over the limit
    too_large: tuple[str, ...]  # kinds over the per-app ceiling
    remaining: Amounts  # what is left before the request

    @property
    def ok(self) -> bool:
        return not self.exceeded and not self.too_large


def _round(value: float) -> float:
    # CPU shares are decimals (0.1 + 0.2): compare them at a precision users can ask for.
    return round(value, 6)


def footprint(
    resources: Mapping[str, Any], volume_count: int, default_memory_mb: int, default_cpus: float
) -> Amounts:
    """What one app counts for: an unset limit counts as the runtime's default."""
    return Amounts(
        apps=1,
        memory_mb=int(resources.get("memory_mb") or default_memory_mb),
        cpus=_round(float(resources.get("cpus") or default_cpus)),
        volumes=volume_count,
    )


def limits_for(defaults: Amounts, overrides: Mapping[str, float | None]) -> Amounts:
    """The operator's defaults, with the user's own limits (set by an admin) where present."""
    chosen: dict[str, Any] = {
        k: (float(v) if k == "cpus" else int(v))
        for k, v in overrides.items()
        if k in KINDS and v is not None
    }
    return replace(defaults, **chosen)


def remaining(used: Amounts, limits: Amounts) -> Amounts:
    return _combine(limits, used, lambda lim, use: max(0.0, lim - use))


def decide(
    used: Amounts,
    change: Amounts,
    limits: Amounts,
    app: Amounts | None = None,
    per_app: PerApp | None = None,
) -> Decision:
    """May `change` be added to `used`? Only growing kinds are checked, so a user over a limit
    an admin lowered can still shrink. `app` (the app's new footprint) is checked against the
    per-app ceiling, again only for kinds that grow (an app made before a lower ceiling keeps
    working and can still be changed otherwise)."""
    exceeded = tuple(
        kind
        for kind in KINDS
        if getattr(change, kind) > 0
        and _round(getattr(used, kind) + getattr(change, kind)) > getattr(limits, kind)
    )
    too_large: tuple[str, ...] = ()
    if app is not None and per_app is not None:
        too_large = tuple(
            kind
            for kind in ("memory_mb", "cpus")
            if getattr(change, kind) > 0 and getattr(app, kind) > getattr(per_app, kind)
        )
    return Decision(exceeded, too_large, remaining(used, limits))
