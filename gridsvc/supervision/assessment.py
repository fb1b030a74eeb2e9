"""Assessment figures (考核指标) and the weighted score, from counted cases.

Formulas (docs/supervision.md):

- 按期处置率 on-time handling rate = handled on time ÷ due for handling
- 结案率 closure rate = closed ÷ (due − deferred)            (deferred = extended or on hold)
- 按期结案率 on-time closure rate = closed on time ÷ (due − deferred)
- 返工率 rework rate = re-dispatched after a failed verification ÷ handled
- 超期未处置率 overdue-unhandled rate = overdue and not handled ÷ due
- 延期率 extension rate = extended ÷ due

A rate whose denominator is zero is ``None`` (no cases: nothing to judge), and a score over
``None`` figures uses only the figures that exist, renormalising their weights.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

DEFAULT_WEIGHTS: dict[str, float] = {
    "on_time_handling_rate": 60,
    "closure_rate": 30,
    "one_minus_rework_rate": 10,
}
DEFAULT_GRADES: list[list[Any]] = [["A", 90], ["B", 80], ["C", 70], ["D", 60], ["E", 0]]


@dataclass
class Counts:
    """What the formulas count, for one member, grid, community or department and period."""

    due: int = 0  # cases whose handling deadline fell in the period
    handled: int = 0  # handled (resolved) among them
    handled_on_time: int = 0
    closed: int = 0
    closed_on_time: int = 0
    deferred: int = 0  # extended or on hold
    extended: int = 0
    reworked: int = 0  # re-dispatched after a failed verification
    overdue_unhandled: int = 0
    on_the_spot: int = 0  # 自处理, counted apart


def _rate(num: int, den: int) -> float | None:
    return None if den <= 0 else round(num / den, 4)


@dataclass
class Figures:
    on_time_handling_rate: float | None
    closure_rate: float | None
    on_time_closure_rate: float | None
    rework_rate: float | None
    overdue_unhandled_rate: float | None
    extension_rate: float | None
    on_the_spot: int

    @property
    def one_minus_rework_rate(self) -> float | None:
        return None if self.rework_rate is None else round(1 - self.rework_rate, 4)

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["one_minus_rework_rate"] = self.one_minus_rework_rate
        return d


def figures(c: Counts) -> Figures:
    """The six rates of the assessment from counts."""
    effective_due = c.due - c.deferred
    return Figures(
        on_time_handling_rate=_rate(c.handled_on_time, c.due),
        closure_rate=_rate(c.closed, effective_due),
        on_time_closure_rate=_rate(c.closed_on_time, effective_due),
        rework_rate=_rate(c.reworked, c.handled),
        overdue_unhandled_rate=_rate(c.overdue_unhandled, c.due),
        extension_rate=_rate(c.extended, c.due),
        on_the_spot=c.on_the_spot,
    )


def score(f: Figures, weights: dict[str, float] | None = None) -> float | None:
    """Weighted score out of 100; figures that are None are left out (weights renormalised)."""
    weights = weights or DEFAULT_WEIGHTS
    values = f.as_dict()
    used = {k: w for k, w in weights.items() if values.get(k) is not None}
    total = sum(used.values())
    if total <= 0:
        return None
    points: float = round(sum(values[k] * w for k, w in used.items()) * 100 / total, 1)
    return points


def grade(points: float | None, grades: list[list[Any]] | None = None) -> str | None:
    """The grade A–E for a score (thresholds as data)."""
    if points is None:
        return None
    for name, minimum in grades or DEFAULT_GRADES:
        if points >= minimum:
            return str(name)
    return str((grades or DEFAULT_GRADES)[-1][0])
