"""The demo's records are consistent in time: nothing happens to a case before it was
reported, and a case's events follow one another in the order they were recorded."""

from __future__ import annotations

import pytest
from django.db.models import F

from gridsvc.cases.models import Case, CaseEvent

pytestmark = pytest.mark.django_db


def test_no_demo_case_event_precedes_its_case_report(demo):
    assert Case.objects.exists()
    early = CaseEvent.objects.filter(at__lt=F("case__reported_at")).values_list(
        "case__number", "kind", "at", "case__reported_at"
    )
    assert list(early) == []


def test_every_demo_case_timeline_is_in_event_order(demo):
    """Events by id (the order they were written) never go back in time."""
    out_of_order = []
    last: dict[int, tuple] = {}
    for case_id, _pk, kind, at in CaseEvent.objects.order_by("case_id", "id").values_list(
        "case_id", "id", "kind", "at"
    ):
        prev = last.get(case_id)
        if prev is not None and at < prev[1]:
            out_of_order.append((case_id, prev[0], kind, prev[1], at))
        last[case_id] = (kind, at)
    assert out_of_order == []


def test_a_merged_case_was_reported_after_the_case_it_joined(demo):
    merged = Case.objects.filter(merged_into__isnull=False)
    assert merged.exists()
    assert (
        list(
            merged.filter(merged_into__reported_at__gt=F("reported_at")).values_list(
                "number", "merged_into__number"
            )
        )
        == []
    )


def test_demo_case_times_and_requests_follow_the_report(demo):
    from django.utils import timezone

    from gridsvc.cases.models import CaseRequest, MediationRecord

    assert not CaseEvent.objects.filter(at__gt=timezone.now()).exists()
    for field in ("assigned_at", "resolved_at", "closed_at"):
        assert not Case.objects.filter(**{f"{field}__lt": F("reported_at")}).exists(), field
    assert not Case.objects.filter(closed_at__lt=F("resolved_at")).exists()
    assert not CaseRequest.objects.filter(requested_at__lt=F("case__reported_at")).exists()
    assert not CaseRequest.objects.filter(decided_at__lt=F("requested_at")).exists()
    assert not MediationRecord.objects.filter(signed_on__lt=F("case__reported_at__date")).exists()


def test_demo_visits_fall_in_their_task_period_and_not_in_the_future(demo):
    from django.utils import timezone

    from gridsvc.visits.models import Visit

    assert Visit.objects.exists()
    assert not Visit.objects.filter(client_time__gt=timezone.now()).exists()
    assert not Visit.objects.filter(
        task__isnull=False, client_time__date__lt=F("task__period_start")
    ).exists()
