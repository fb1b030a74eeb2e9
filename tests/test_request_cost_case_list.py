"""The case list ("my cases" and the plain list, issue 19) is written from plain rows —
no model instance, no serializer field, no display lookup per case — and what it writes is
CaseSerializer's output to the byte, masked parties included, for every demo case the street
dispatcher, a cadre, a grid member and a building head may see."""

from __future__ import annotations

import json
from datetime import date, timedelta
from types import SimpleNamespace

import pytest
from django.db import connection
from django.db.models import F
from django.db.models.signals import post_init
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from rest_framework.renderers import JSONRenderer

from api.cases.scope import case_queryset
from api.cases.serializers import (
    CASE_ROW,
    CaseSerializer,
    case_row_coordinates,
    case_rows_payload,
)
from gridsvc.accounts.models import Member
from gridsvc.cases.models import Case, Category, Department

from .test_request_cost import jwt_client

pytestmark = pytest.mark.django_db

ROLES = ("street", "cadre1", "grid1", "bh-001")


def _vary_the_demo_cases() -> None:
    """Make the demo cases cover what the writer must get right: parties (with phones and id
    numbers, to mask), an overdue case, a department, a handler without a display name, a
    hold date, flags, and conditions inherited from a parent and a grandparent category."""
    cases = list(Case.objects.order_by("id"))
    assert len(cases) >= 8
    parties = [
        {
            "name": "张三丰",
            "role": "申请人",
            "phone": "13900000001",
            "id_number": "62010319800101001X",
        },
        {"name": "李四", "role": "被申请人", "phone": ""},
        "王五",
    ]
    for c in cases[::3]:
        Case.objects.filter(pk=c.pk).update(parties=parties)
    Case.objects.filter(pk=cases[1].pk).update(
        due_at=timezone.now() - timedelta(days=2), status="assigned"
    )
    dept = Department.objects.first() or Department.objects.create(code="T-D", name="供水公司")
    Case.objects.filter(pk=cases[2].pk).update(department=dept, hold_until=date(2026, 12, 24))
    Case.objects.filter(pk=cases[4].pk).update(
        ethnic_religious=True, petition_risk=True, priority=1
    )
    child = Category.objects.filter(parent__isnull=False).first()
    assert child is not None, "the demo has sub-categories"
    parent = child.parent
    Category.objects.filter(pk=parent.pk).update(open_conditions="", close_conditions="结案：上级")
    grand = Category.objects.create(
        code="T-GRAND", name="祖", kind=parent.kind, open_conditions="立案：祖", close_conditions=""
    )
    Category.objects.filter(pk=parent.pk).update(parent=grand)
    Category.objects.filter(pk=child.pk).update(open_conditions="", close_conditions="")
    Case.objects.filter(pk=cases[5].pk).update(category=child)
    leaf = Category.objects.create(
        code="T-LEAF", name="叶", kind=parent.kind, parent=parent, open_conditions="立案：叶"
    )
    Case.objects.filter(pk=cases[6].pk).update(category=leaf)
    handler = Member.objects.filter(cases_handled__isnull=False).first()
    Member.objects.filter(pk=handler.pk).update(display_name="")


def _render(data: object) -> bytes:
    return JSONRenderer().render(data)


@pytest.mark.parametrize("crs", ["wgs84", "gcj02"])
def test_the_row_writer_writes_what_case_serializer_writes(demo, crs: str) -> None:
    _vary_the_demo_cases()
    seen: list[dict] = []
    for username in ROLES:
        member = Member.objects.get(username=username)
        request = SimpleNamespace(user=member)
        cases = list(case_queryset(request).order_by("id"))
        assert cases, f"{username} sees some cases"
        rows = list(
            case_queryset(request).order_by("id").values(*CASE_ROW, **case_row_coordinates())
        )
        expected = CaseSerializer(cases, many=True, context={"request": request, "crs": crs}).data
        written = case_rows_payload(rows, request, crs)
        for want, got in zip(expected, written, strict=True):
            assert _render(got) == _render(want), (username, want["id"])
        assert _render(written) == _render(expected)
        seen += written
    # the variations were met: masked and clear names, phones left out and kept, …
    names = [p["name"] for c in seen for p in c["parties"]]
    assert "张三丰" in names and "张**" in names and "王*" in names
    assert any("phone" in p for c in seen for p in c["parties"])
    assert any(c["parties"] and "phone" not in c["parties"][0] for c in seen)
    assert {c["overdue"] for c in seen} == {True, False}
    assert any(c["department_name"] for c in seen) and any(c["hold_until"] for c in seen)
    assert any(c["handler_name"] is None for c in seen)
    assert any(c["flags"] == ["ethnic_religious", "petition_risk"] for c in seen)
    conditions = {c["conditions"]["open"] for c in seen} | {c["conditions"]["close"] for c in seen}
    assert {"立案：祖", "立案：叶", "结案：上级"} <= conditions


@pytest.mark.parametrize(
    ("who", "path"),
    [
        ("cadre1", "/api/v1/cases/?mine=1"),
        ("grid1", "/api/v1/cases/?mine=1"),
        ("grid1", "/api/v1/cases/?page_size=500"),
        ("cadre1", "/api/v1/cases/?page_size=500&crs=bd09"),
        ("bh-001", "/api/v1/cases/?page_size=500"),
    ],
)
def test_the_case_list_builds_no_case_and_answers_the_same_bytes(demo, who: str, path: str) -> None:
    """The list over HTTP: the page and its count in one query after the caller, not one
    Case instance built, and the body CaseSerializer's page to the byte."""
    _vary_the_demo_cases()
    member = Member.objects.get(username=who)
    if "mine" in path and Case.objects.filter(handler=member).count() < 3:
        others = Case.objects.exclude(handler=member).order_by("id")[:3]
        Case.objects.filter(id__in=[c.id for c in others]).update(handler=member)
    client = jwt_client(who)
    client.get(path)
    built: list[object] = []

    def count(sender, instance, **kwargs) -> None:  # type: ignore[no-untyped-def]  # noqa: ARG001
        built.append(instance)

    post_init.connect(count, sender=Case)
    try:
        with CaptureQueriesContext(connection) as ctx:
            r = client.get(path)
    finally:
        post_init.disconnect(count, sender=Case)
    assert r.status_code == 200, r.content[:300]
    assert built == [], "a Case instance was built for the list"
    assert len(ctx.captured_queries) <= 3  # the caller, the page with its count (+ a rare
    # grandparent category's conditions)
    request = SimpleNamespace(user=member)
    qs = case_queryset(request)
    if "mine" in path:
        qs = qs.filter(handler=member)
    cases = list(qs.order_by("-reported_at", "-id"))
    crs = "bd09" if "bd09" in path else "wgs84"
    expected = CaseSerializer(cases, many=True, context={"request": request, "crs": crs}).data
    body = {"count": len(cases), "next": None, "previous": None, "results": expected}
    assert r.content == _render(body)
    assert json.loads(r.content)["count"] > 0


def test_an_ordered_searched_page_is_the_same_bytes(demo) -> None:
    """``?ordering=`` and ``?q=``, a page past the first: the rows of the page's ids in the
    asked order, as CaseSerializer writes them."""
    _vary_the_demo_cases()
    member = Member.objects.get(username="street")
    request = SimpleNamespace(user=member)
    client = jwt_client("street")
    ordered = case_queryset(request).order_by(
        F("priority").asc(nulls_last=True), "reported_at", "id"
    )
    for path, qs in (
        ("/api/v1/cases/?ordering=priority&page_size=4&page=2", ordered),
        ("/api/v1/cases/?q=%E7%BA%A0%E7%BA%B7&page_size=3", None),
    ):
        r = client.get(path)
        assert r.status_code == 200, r.content[:300]
        body = json.loads(r.content)
        if qs is None:  # the search: its rows, in the default order
            qs = case_queryset(request).filter(id__in=[c["id"] for c in body["results"]])
            qs = qs.order_by("-reported_at", "-id")
            assert body["results"], "the search finds some cases"
        else:
            assert body["count"] == qs.count()
            qs = qs[4:8]
        expected = CaseSerializer(list(qs), many=True, context={"request": request, "crs": "wgs84"})
        assert r.content.endswith(b'"results":' + _render(expected.data) + b"}")
