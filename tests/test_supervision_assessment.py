"""Assessment formulas against hand-counted cases."""

from __future__ import annotations

import pytest

from gridsvc.supervision.assessment import Counts, figures, grade, score


def test_formulas_against_hand_counts():
    # 20 cases due; 2 extended and 1 on hold (3 deferred); 16 handled, 14 of them on time;
    # 15 closed (12 on time); 2 re-dispatched after failed verification; 3 overdue unhandled.
    c = Counts(
        due=20,
        handled=16,
        handled_on_time=14,
        closed=15,
        closed_on_time=12,
        deferred=3,
        extended=2,
        reworked=2,
        overdue_unhandled=3,
        on_the_spot=4,
    )
    f = figures(c)
    assert f.on_time_handling_rate == 0.7  # 14 / 20
    assert f.closure_rate == round(15 / 17, 4)  # closed ÷ (due − deferred)
    assert f.on_time_closure_rate == round(12 / 17, 4)
    assert f.rework_rate == 0.125  # 2 / 16
    assert f.overdue_unhandled_rate == 0.15  # 3 / 20
    assert f.extension_rate == 0.1  # 2 / 20
    assert f.on_the_spot == 4
    # 60·0.7 + 30·(15/17) + 10·(1 − 0.125) = 42 + 26.47 + 8.75 = 77.2 → C
    assert score(f) == pytest.approx(77.2, abs=0.05)
    assert grade(score(f)) == "C"


def test_no_cases_means_no_rate_not_zero():
    f = figures(Counts())
    assert f.closure_rate is None and score(f) is None and grade(None) is None


def test_weights_and_grades_are_data():
    f = figures(Counts(due=10, handled=10, handled_on_time=10, closed=10, closed_on_time=10))
    assert score(f) == 100.0 and grade(100.0) == "A"
    assert score(f, {"closure_rate": 1}) == 100.0
    assert grade(65, [["优秀", 90], ["合格", 60], ["不合格", 0]]) == "合格"
