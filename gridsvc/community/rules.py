"""The community work's own ground rules, below the cases (gridsvc.cases) and the visits:
what the rest of the house asks of the community without reaching its services.

- the work scope (:func:`work_scope`, :func:`require_staff`, :func:`resolve`) every community
  rule is judged on, and its refusal (:class:`CommunityError`);
- the ethnic-affairs desk's sign-off a case's closing rule may ask for
  (:func:`needs_ethnic_sign_off`, :func:`ethnic_sign_off`; recorded by
  :func:`gridsvc.community.services.sign_off`);
- the 五员 调处员 who take disputes (:func:`running_mediators`, one rule read by
  :func:`may_mediate` and :func:`active_mediators`);
- the 民族语言翻译员 to send to a household (:func:`interpreters_for`).

:mod:`gridsvc.cases.services.unity` asks these; :mod:`gridsvc.community.services` hands
them on under the names it always had. This module imports only the community's models, the
chain, the territory and :mod:`gridsvc.errors`, never the cases, the visits or the
community's services.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from django.db.models import Model, Q, QuerySet
from django.utils import timezone

from gridsvc.chain.models import Position, PositionType
from gridsvc.chain.scope import Scope, scope_for
from gridsvc.chain.visibility import (
    DISTRICT_POSITIONS,
    NEIGHBOUR_POSITIONS,
    Tier,
    staff_scope,
    tier_for,
)
from gridsvc.errors import DomainError
from gridsvc.territory.models import Household

from .models import FiveRole, Language, ResidentLanguage, SignOff, Team, TeamMembership

NOT_FOUND = "not found"


class CommunityError(DomainError):
    """A rule of the community work refused the request. A refusal with a reason of its own
    (``code``: ``not_mediator``, ``not_five`` …) says it beside the message, in the single
    POST's answer (:meth:`body`) and in an offline batch's rejected item
    (:func:`api.batch.run_batch`) alike."""

    def body(self) -> dict[str, Any]:
        """The field's message and ``detail``, and ``code`` when the rule names its reason."""
        body = super().body()
        if self.code != DomainError.code:
            body["code"] = self.code
        return body


@dataclass(frozen=True, slots=True)
class RecordedSpan:
    """When an offline record was made (交接后补传): from ``start`` to ``end`` (a day, or an
    instant), sent late; posts left before ``since`` (the upload window) no longer count."""

    start: datetime
    end: datetime
    since: datetime


_recorded: ContextVar[RecordedSpan | None] = ContextVar("community_recorded", default=None)


@contextmanager
def judged_when_recorded(span: RecordedSpan) -> Iterator[None]:
    """Within the block, :func:`work_scope` is the member's work scope now **and** the staff
    posts they held while the record was made (``span``) and left within the upload window:
    a phone's offline record made in post and sent after a hand-over is judged at the time it
    was made, as the visits are (:func:`gridsvc.visits.ingest.households_held_at`). Nothing
    beyond what the member held then or holds now is reached; reads never run in here."""
    token = _recorded.set(span)
    try:
        yield
    finally:
        _recorded.reset(token)


def staff_posts_left_since(member: Any, since: datetime, until: datetime | None = None) -> QuerySet:
    """``member``'s staff or street posts (not a neighbour's, not the district's) held at some
    moment after ``since`` (and before ``until``, when given), ended since or not: the posts an
    offline record may still be filed on (交接后补传)."""
    posts = (
        Position.objects.filter(member=member)
        .filter(Q(valid_to__isnull=True) | Q(valid_to__gt=since))
        .exclude(position_type__in=NEIGHBOUR_POSITIONS | DISTRICT_POSITIONS)
    )
    if until is not None:
        posts = posts.filter(valid_from__lt=until)
    return posts


def _held_when_recorded(member: Any, span: RecordedSpan) -> Scope:
    """The work scope of the staff posts ``member`` held during ``span`` (left, if at all,
    after ``span.since``)."""
    scope = Scope()
    rows = staff_posts_left_since(member, max(span.start, span.since), span.end).values_list(
        "street_id", "community_id", "grid_id"
    )
    for street, community, grid in rows:
        for ids, value in (
            (scope.street_ids, street),
            (scope.community_ids, community),
            (scope.grid_ids, grid),
        ):
            if value:
                ids.add(value)
    return scope


def work_scope(member: Any) -> Scope:
    """Where ``member`` may read and record community work: the staff/street part of their
    scope (empty for neighbours and for members without positions). Inside
    :func:`judged_when_recorded` (an offline batch's item), the staff posts held when the
    item was recorded are added."""
    scope = Scope() if tier_for(member) < Tier.STAFF else staff_scope(scope_for(member))
    span = _recorded.get()
    if span is None or scope.everything or not getattr(member, "is_authenticated", False):
        return scope
    then = _held_when_recorded(member, span)
    return Scope(
        street_ids=scope.street_ids | then.street_ids,
        community_ids=scope.community_ids | then.community_ids,
        grid_ids=scope.grid_ids | then.grid_ids,
    )


def require_staff(member: Any) -> Scope:
    """``member``'s work scope (:func:`work_scope`); refused (403) when it is empty: only
    grid, community and street staff record community work. An offline item recorded when
    the member held no staff post (after the post ended) is refused with
    ``code: not_in_territory``."""
    scope = work_scope(member)
    if scope.empty:
        if _recorded.get() is not None:
            raise CommunityError(
                "recorded when you held no post for community work (after your post ended)",
                "date",
                status=403,
                code="not_in_territory",
            )
        raise CommunityError(
            "only grid, community and street staff record community work",
            status=403,
            code="permission_denied",
        )
    return scope


def resolve(scope: Scope, model: type[Model], pk: Any, field: str) -> Any:
    """The ``model`` row ``pk`` inside ``scope`` (None when no id is given); a foreign id is
    "not found" (naming ``field``), like a nonexistent one."""
    if pk in (None, ""):
        return None
    obj = scope.filter(model.objects.all()).filter(pk=pk).first()
    if obj is None:
        raise CommunityError(NOT_FOUND, field)
    return obj


def shown_petition(petitioner: str, subject: str, tier: Tier) -> tuple[str, str]:
    """A 信访's petitioner and subject as ``tier`` reads them (the API, the feed, the 台账):
    below the street the petitioner's name is masked (张*明), and so is the name written
    again in the subject (a mask beside the name in clear is no mask); for every tier a
    phone or ID number typed into the subject is masked (:mod:`gridsvc.territory.textmask`)."""
    from gridsvc.territory.codes import mask_name
    from gridsvc.territory.textmask import mask_in_text

    if tier < Tier.STREET:
        masked = mask_name(petitioner) or ""
        if len(petitioner or "") >= 2:
            subject = (subject or "").replace(petitioner, masked)
        petitioner = masked
    return petitioner, mask_in_text(subject or "")


def located_from_household(household: Household) -> dict[str, Any]:
    """The street, community and grid ids of ``household`` (through its building's grid);
    refused when the building lies outside every grid."""
    g = household.unit.building.grid
    if g is None:
        raise CommunityError("the household's building lies outside every grid", "household")
    return {"street_id": g.community.street_id, "community_id": g.community_id, "grid_id": g.pk}


def needs_ethnic_sign_off(case: Any) -> bool:
    """Whether ``case``'s closing rule asks for the ethnic-affairs desk's confirmation: the
    ``ethnic`` category (or one under it), or the 涉及民族宗教因素 flag."""
    cat = case.category
    codes = {cat.code, cat.parent.code if cat.parent_id else ""}
    return "ethnic" in codes or bool(case.ethnic_religious)


def ethnic_sign_off(case: Any) -> SignOff | None:
    """The standing sign-off of ``case`` (the latest), or None. The case's closing step may
    require ``confirmed`` here when :func:`needs_ethnic_sign_off`."""
    return SignOff.objects.filter(case=case).order_by("-created_at", "-id").first()


def five_member_teams(member: Any, day: date) -> QuerySet:
    """The 五员 memberships of ``member`` active on ``day``."""
    return TeamMembership.objects.filter(
        team=Team.FIVE_MEMBERS, member=member, valid_from__lte=day
    ).filter(Q(valid_to__isnull=True) | Q(valid_to__gte=day))


def mediator_memberships(community_id: int | None, day: date) -> QuerySet:
    """The community's 五员 调处员 memberships on ``day``, on leave or not: members with an
    active account, their membership running that day (the case's candidates list them with
    their leave, ``gridsvc.cases.services.candidates``)."""
    if community_id is None:
        return TeamMembership.objects.none()
    return TeamMembership.objects.filter(
        team=Team.FIVE_MEMBERS,
        role=FiveRole.MEDIATOR,
        community_id=community_id,
        member__isnull=False,
        member__is_active=True,
        valid_from__lte=day,
    ).filter(Q(valid_to__isnull=True) | Q(valid_to__gte=day))


def running_mediators(community_id: int | None, day: date) -> QuerySet:
    """The community's 五员 调处员 memberships who can take a dispute on ``day``: those of
    :func:`mediator_memberships` not on leave. The one rule of who is a 调处员:
    :func:`active_mediators` (routing picks among them) and :func:`may_mediate` (who records a
    session) both read it."""
    return mediator_memberships(community_id, day).filter(on_leave=False)


def may_mediate(member: Any, community_id: int, day: date) -> bool:
    """A 调处员 of the community on ``day`` as routing sees one (:func:`running_mediators`:
    membership running, not on leave, account active), or a member of its mediation committee
    (a post held now, not on leave)."""
    if getattr(member, "is_superuser", False):
        return True
    if not getattr(member, "is_active", False):
        return False
    five = running_mediators(community_id, day).filter(member=member)
    committee = Position.objects.active_at().filter(
        member=member,
        position_type=PositionType.MEDIATION_COMMITTEE,
        community_id=community_id,
    )
    return five.exists() or committee.exists()


def active_mediators(community_id: int | None, day: date) -> list[TeamMembership]:
    """The community's 五员 调处员 who can take a dispute on ``day``
    (:func:`running_mediators`), earliest first (like a chain post's holders)."""
    return list(
        running_mediators(community_id, day).select_related("member").order_by("valid_from", "id")
    )


def interpreters_for(member: Any, household: Any, day: date | None = None) -> dict[str, Any]:
    """Who to send with a case or visit to ``household`` (an id in ``member``'s work scope):
    its residents needing an interpreter, their languages other than 汉语, and the active
    民族语言翻译员 of the household's community (or its grid) for each language. Assignments
    attach one through :mod:`gridsvc.community.languages`."""
    scope = require_staff(member)
    hh = resolve(scope, Household, household, "household")
    if hh is None:
        raise CommunityError("name the household", "household")
    day = day or timezone.localdate()
    where = located_from_household(hh)
    needs = list(
        ResidentLanguage.objects.filter(resident__household=hh, interpreter_needed=True)
        .select_related("resident")
        .order_by("resident_id")
    )
    wanted = sorted({code for n in needs for code in n.languages if code != Language.MANDARIN})
    team = (
        TeamMembership.objects.filter(
            team=Team.INTERPRETERS, role__in=wanted, community_id=where["community_id"]
        )
        .filter(Q(grid__isnull=True) | Q(grid_id=where["grid_id"]))
        .filter(valid_from__lte=day)
        .filter(Q(valid_to__isnull=True) | Q(valid_to__gte=day))
        .select_related("member")
        .order_by("role", "id")
    )
    labels = dict(Language.choices)
    return {
        "household": hh.pk,
        "residents": [
            {
                "resident": n.resident_id,
                "languages": [labels.get(c, c) for c in n.languages],
            }
            for n in needs
        ],
        "interpreters": [
            {
                "membership": t.pk,
                "language": t.role,
                "language_name": labels.get(t.role, t.role),
                "member": t.member_id,
                "name": str(t.member) if t.member else t.name,
            }
            for t in team
        ],
        "missing_languages": [labels[c] for c in wanted if c not in {t.role for t in team}],
    }
