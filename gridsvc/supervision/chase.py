"""催报: chasing a missing daily report (一日一报) from the street office page.

:func:`missing_reports` is the list of :func:`gridsvc.visits.services.members_missing_daily_report`
(field posts and the 五员's screening report) with, per member, the grid and role the page
shows, the work contact (:mod:`gridsvc.supervision.staff`: staff and street callers only) and
whether the member was chased for that day.

:func:`chase` puts one reminder in the member's inbox (消息, delivered to the phone by the
change feed and by the notifier): once per member and day — a second chase answers with the
first. Only posts that dispatch or supervise (street dispatcher, community cadre 网格长,
mediation committee; superusers) chase, only members whose report for that day is missing and
whose reports the caller may read (the caller's territory).
"""

from __future__ import annotations

from datetime import date
from typing import Any

from django.db import transaction

from gridsvc.chain.models import Position, PositionType
from gridsvc.chain.scope import Scope
from gridsvc.errors import DomainError

from .models import InboxMessage
from .staff import PLACE_DEFER, PLACE_RELATED, place_of, role_label, shows_contacts, work_contact

#: posts that may chase a report: those that dispatch or supervise field work
CHASE_POSITION_TYPES = frozenset(
    {
        PositionType.STREET_DISPATCHER.value,
        PositionType.COMMUNITY_CADRE.value,
        PositionType.MEDIATION_COMMITTEE.value,
    }
)
#: the inbox message's object: ``daily_report`` and the day (YYYY-MM-DD)
OBJECT_TYPE = "daily_report"


class ChaseError(DomainError):
    """A chase refused: 400 naming the field, 403 for a caller who may not chase, 404 for a
    member who owes no report the caller may chase."""


def may_chase(caller: Any) -> bool:
    """Whether ``caller`` holds (and is not on leave from) a post that chases reports."""
    if getattr(caller, "is_superuser", False):
        return True
    if not getattr(caller, "pk", None):
        return False
    return (
        Position.objects.active_at()
        .filter(member_id=caller.pk, position_type__in=CHASE_POSITION_TYPES)
        .exists()
    )


def chased_on(day: date, member_ids: list[int]) -> dict[int, InboxMessage]:
    """The first chase of each member for ``day`` (one query)."""
    if not member_ids:
        return {}
    out: dict[int, InboxMessage] = {}
    rows = InboxMessage.objects.filter(
        object_type=OBJECT_TYPE, object_id=day.isoformat(), member_id__in=member_ids
    ).order_by("created_at", "id")
    for msg in rows:
        out.setdefault(msg.member_id, msg)
    return out


def missing_reports(scope: Scope, day: date, caller: Any = None) -> list[dict[str, Any]]:
    """Members who owe ``day``'s report (see the module), each row with ``grid``,
    ``grid_name``, ``community``, ``community_name``, ``role``, ``role_label``, ``roles``
    (every post's label), ``contact`` (work phone or ``None``), ``chased`` and ``chased_at``.
    Three queries on top of the list's own."""
    from gridsvc.accounts.models import Member
    from gridsvc.visits.services import members_missing_daily_report

    rows = members_missing_daily_report(scope, day, caller)
    if not rows:
        return rows
    position_ids = [p["id"] for r in rows for p in r["positions"]]
    positions = {
        p.pk: p
        for p in Position.objects.filter(pk__in=position_ids)
        .select_related(*PLACE_RELATED)
        .defer(*PLACE_DEFER)
    }
    member_ids = [r["member"] for r in rows]
    phones = dict(Member.objects.filter(pk__in=member_ids).values_list("pk", "phone"))
    chased = chased_on(day, member_ids)
    sees = shows_contacts(caller) if caller is not None else True
    for row in rows:
        held = [positions[p["id"]] for p in row["positions"] if p["id"] in positions]
        labels = [role_label(p.position_type) for p in held]
        labels += [f"五员·{s['role_name']}" for s in row.get("screening", [])]
        place: dict[str, Any] = place_of(held[0]) if held else {}
        if held:
            row["role"] = held[0].position_type
            row["role_label"] = labels[0]
        else:  # only the 五员's screening report is missing
            row["role"] = "five_members"
            row["role_label"] = labels[0] if labels else "五员"
        community = place.get("community") or next(
            (s["community"] for s in row.get("screening", [])), None
        )
        row["grid"] = place.get("grid")
        row["grid_name"] = place.get("grid_name")
        row["community"] = community
        row["community_name"] = place.get("community_name")
        row["territory_name"] = place.get("territory_name", "")
        row["roles"] = labels
        row["contact"] = work_contact(_Phone(phones.get(row["member"], "")), sees)
        msg = chased.get(row["member"])
        row["chased"] = msg is not None
        row["chased_at"] = msg.created_at if msg is not None else None
    if any(r["community"] and not r["community_name"] for r in rows):
        from gridsvc.territory.models import Community

        ids = {r["community"] for r in rows if r["community"] and not r["community_name"]}
        names = dict(Community.objects.filter(pk__in=ids).values_list("pk", "name"))
        for r in rows:
            if r["community"] and not r["community_name"]:
                r["community_name"] = names.get(r["community"])
    return rows


class _Phone:
    """A member's phone alone (:func:`work_contact` reads ``.phone``)."""

    def __init__(self, phone: str) -> None:
        self.phone = phone


def _reminder(row: dict[str, Any], day: date, caller: Any) -> tuple[str, str]:
    """Title and body of the reminder for the reports ``row`` says are missing."""
    owed = []
    if row["positions"]:
        owed.append("一日一报")
    if row.get("screening"):
        owed.append("五员排查日报(零报告也需报送)")
    what = "、".join(owed) or "一日一报"
    title = f"催报:请提交 {day:%Y-%m-%d} 的{what}"
    by = str(caller) if getattr(caller, "pk", None) else "系统"
    body = f"{by} 提醒您:{day:%Y年%m月%d日}的{what}尚未提交,请尽快在手机端报送。"
    return title[:200], body


def chase(scope: Scope, caller: Any, member_id: Any, day: date) -> tuple[dict[str, Any], bool]:
    """Chase ``member_id``'s report for ``day``: put one reminder in their inbox and queue its
    delivery. Returns the chase (``member``, ``date``, ``chased_at``, ``message``, ``title``)
    and whether it was made now (False: it was already chased that day, nothing sent).

    Refuses (:class:`ChaseError`): a caller who may not chase (403), a future ``day`` (400
    ``date``), a member whose report for ``day`` is not missing or whom the caller may not
    read (404)."""
    from gridsvc.accounts.models import Member
    from gridsvc.cases import jobs
    from gridsvc.visits.services import local_today, members_missing_daily_report

    if not may_chase(caller):
        raise ChaseError(
            "only the street desk, community cadres and the mediation committee chase reports",
            status=403,
            code="permission_denied",
        )
    if day > local_today():
        raise ChaseError("a report cannot be chased before its day", "date")
    try:
        member_id = int(member_id)
    except (TypeError, ValueError):
        raise ChaseError("a member id is required", "member") from None
    with transaction.atomic():
        # one chase per member and day: concurrent chases queue on the member's row
        locked = list(
            Member.objects.select_for_update().filter(pk=member_id).values_list("pk", flat=True)
        )
        row = None
        if locked:
            missing = members_missing_daily_report(scope, day, caller)
            row = next((r for r in missing if r["member"] == member_id), None)
        if row is None:  # nobody, reported, or outside the territory: one answer for all
            raise ChaseError(
                "this member's report for the day is not missing, or not in your territory",
                "member",
                status=404,
                code="not_found",
            )
        first = chased_on(day, [member_id]).get(member_id)
        if first is not None:
            return _answer(first, day), False
        title, body = _reminder(row, day, caller)
        msg = InboxMessage.objects.create(
            member_id=member_id,
            kind=InboxMessage.Kind.OTHER,
            title=title,
            body=body,
            object_type=OBJECT_TYPE,
            object_id=day.isoformat(),
        )
        jobs.deliver_inbox_later([msg.pk])
    return _answer(msg, day), True


def _answer(msg: InboxMessage, day: date) -> dict[str, Any]:
    return {
        "member": msg.member_id,
        "date": day,
        "chased_at": msg.created_at,
        "message": msg.pk,
        "title": msg.title,
    }
