"""``Case.updated_at`` moves on every write, so ``?updated_since=`` (the street page's live
poll; the sync feed reads the same column) brings the case: a ``QuerySet.update()`` (no
``auto_now`` there) and the clock's deadline recompute, which saves ``deadline_version``
alone (``save(update_fields=[...])``), both used to leave it behind. A write that sets
``updated_at`` itself keeps its value (the trigger of migration cases 0005)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from gridsvc.cases.models import Case
from gridsvc.cases.services.clock import recompute_open_deadlines

from .cases_helpers import cases_under_way

pytestmark = pytest.mark.django_db

URL = "/api/v1/cases/"


def _changed(client: Any, since: Any) -> list[int]:
    r = client.get(URL, {"updated_since": since.isoformat(), "page_size": 500})
    assert r.status_code == 200, r.content
    return [c["id"] for c in r.json()["results"]]


def _open_case(grid: Any) -> Case:
    (case,) = cases_under_way(
        grid,
        narrow=lambda qs: qs.filter(
            status__in=["assigned", "in_progress"], due_at__isnull=False
        ).exclude(due_source="person"),
    )
    return case


def test_a_queryset_update_moves_updated_at_and_the_poll_brings_the_case(
    demo: Any, member_client: Any
) -> None:
    case = _open_case(demo.grids[0])
    other = _open_case(demo.grids[1])
    since = timezone.now()
    assert case.updated_at < since
    Case.objects.filter(pk=case.pk).update(priority=1)
    stamped = Case.objects.get(pk=case.pk).updated_at
    assert stamped >= since
    changed = _changed(member_client("street"), since)
    assert case.pk in changed and other.pk not in changed
    # a write that sets updated_at itself keeps it (a loader writing history)
    past = since - timedelta(days=3)
    Case.objects.filter(pk=case.pk).update(updated_at=past, title="历史")
    assert Case.objects.get(pk=case.pk).updated_at == past
    assert case.pk not in _changed(member_client("street"), since)


def test_the_deadline_recompute_moves_updated_at(demo: Any, member_client: Any) -> None:
    """A calendar or rule change recomputes open cases' deadlines (cases.recompute): a case
    whose deadline stays saves only ``deadline_version`` — its row changed, so it comes."""
    case = _open_case(demo.grids[0])
    since = timezone.now()
    assert case.pk not in _changed(member_client("street"), since)
    recompute_open_deadlines(category_ids=[case.category_id])
    after = Case.objects.get(pk=case.pk)
    assert after.deadline_version > case.deadline_version
    assert after.due_at == case.due_at  # the unchanged-deadline path
    assert after.updated_at >= since
    assert case.pk in _changed(member_client("street"), since)
