"""Languages on assignment (issue 20 item 11; 004: 汉、维、哈三种语言, 民族语言翻译员).

A resident who needs an interpreter (:class:`ResidentLanguage`) is covered by an assignee who
speaks one of the resident's languages other than 汉语 (:class:`MemberLanguage`, or an active
民族语言翻译员 membership for that language). When a case or visit task goes to someone who
does not cover every such resident of the household, an :class:`InterpreterCall` attaches one
of the community's 民族语言翻译员 for the language (or none, when nobody interprets it) and the
interpreter is told in their inbox. When several members may take a visit task, the one who
speaks the household's language is preferred (:func:`speakers_for_households`, used by
:func:`gridsvc.visits.services.generate_tasks`).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date
from typing import Any

from django.db.models import Q, QuerySet
from django.utils import timezone

from .models import (
    FiveRole,
    InterpreterCall,
    Language,
    MemberLanguage,
    ResidentLanguage,
    Team,
    TeamMembership,
)

ZH = Language.MANDARIN.value


def language_name(code: str) -> str:
    """A language's name (东乡语 for ``sce``), as the REST API gives it (``language_name``);
    a code that is not a :class:`Language` as it is. The one mapping the ledgers use too."""
    return dict(Language.choices).get(code, code)


def role_name(team: str, role: str) -> str:
    """A team membership's role by name: a 民族语言翻译员's role is a language (东乡语), a 五员's
    a :class:`FiveRole` (调处员); other teams' roles are free text, shown as written."""
    if team == Team.INTERPRETERS:
        return language_name(role)
    return dict(FiveRole.choices).get(role, role)


def active_memberships(qs: QuerySet, day: date) -> QuerySet:
    """The team memberships of ``qs`` (:class:`TeamMembership` rows) running on ``day``:
    begun on or before it and not ended before it (on leave or not)."""
    return qs.filter(valid_from__lte=day).filter(Q(valid_to__isnull=True) | Q(valid_to__gte=day))


def languages_spoken(member_ids: Iterable[int | None], day: date | None = None) -> dict[int, set]:
    """member id → the languages they speak besides 汉语 (recorded, or interpreted as an
    active 民族语言翻译员). Members with none are absent."""
    ids = {m for m in member_ids if m}
    if not ids:
        return {}
    day = day or timezone.localdate()
    out: dict[int, set] = {}
    for mid, langs in MemberLanguage.objects.filter(member_id__in=ids).values_list(
        "member_id", "languages"
    ):
        out.setdefault(mid, set()).update(c for c in langs if c != ZH)
    roles = active_memberships(
        TeamMembership.objects.filter(team=Team.INTERPRETERS, member_id__in=ids), day
    ).values_list("member_id", "role")
    for mid, role in roles:
        out.setdefault(mid, set()).add(role)
    return {m: s for m, s in out.items() if s}


def household_needs(household_ids: Iterable[int] | None = None) -> dict[int, list[list[str]]]:
    """household id → for each resident needing an interpreter, their languages other than
    汉语 (in the order recorded). ``None``: every household."""
    qs = ResidentLanguage.objects.filter(interpreter_needed=True, resident__household__isnull=False)
    if household_ids is not None:
        qs = qs.filter(resident__household__in=household_ids)
    out: dict[int, list[list[str]]] = {}
    for hid, langs in qs.order_by("resident_id").values_list("resident__household_id", "languages"):
        wanted = [c for c in langs if c != ZH]
        if wanted:
            out.setdefault(hid, []).append(wanted)
    return out


def uncovered(needs: list[list[str]], spoken: set) -> list[list[str]]:
    """The residents' language lists the assignee (speaking ``spoken``) cannot serve."""
    return [langs for langs in needs if not spoken.intersection(langs)]


def speakers_for_households(
    household_ids: Iterable[int] | None = None, day: date | None = None
) -> dict[int, set[int]]:
    """household id → members who speak a language one of its residents needs (an
    interpreter is then not needed), for the households with such residents. The visit
    assigner prefers them among several holders of the same post."""
    needs = household_needs(household_ids)
    if not needs:
        return {}
    day = day or timezone.localdate()
    wanted = {c for lists in needs.values() for langs in lists for c in langs}
    by_lang: dict[str, set[int]] = {}
    for mid, langs in MemberLanguage.objects.filter(languages__overlap=list(wanted)).values_list(
        "member_id", "languages"
    ):
        for c in langs:
            by_lang.setdefault(c, set()).add(mid)
    for mid, role in active_memberships(
        TeamMembership.objects.filter(
            team=Team.INTERPRETERS, role__in=wanted, member__isnull=False
        ),
        day,
    ).values_list("member_id", "role"):
        by_lang.setdefault(role, set()).add(mid)
    return {
        hid: {m for langs in lists for c in langs for m in by_lang.get(c, ())}
        for hid, lists in needs.items()
    }


def _interpreters(community_id: int, grid_id: int | None, day: date) -> dict[str, TeamMembership]:
    """language → the first active 民族语言翻译员 of the community (or the grid) with an account
    or a name, not on leave."""
    rows = active_memberships(
        TeamMembership.objects.filter(
            team=Team.INTERPRETERS, community_id=community_id, on_leave=False
        ).filter(Q(grid__isnull=True) | Q(grid_id=grid_id)),
        day,
    ).order_by("valid_from", "id")
    out: dict[str, TeamMembership] = {}
    for t in rows:
        out.setdefault(t.role, t)
    return out


def attach_interpreters(
    *,
    household: Any,
    assignee_id: int | None,
    case: Any = None,
    visit_task: Any = None,
    recorded_by: Any = None,
    day: date | None = None,
    notify: bool = True,
    needs: list[list[str]] | None = None,
    spoken: set | None = None,
    fresh: bool = False,
) -> list[InterpreterCall]:
    """Attach interpreters to ``case`` or ``visit_task`` (one of them) going to ``household``
    and ``assignee_id``: one :class:`InterpreterCall` per language the assignee cannot serve
    (the first of each uncovered resident's languages an interpreter covers, else the first);
    calls no longer needed (the new assignee speaks it) are removed. With ``notify`` the
    interpreters hear of it in their inbox (消息). Returns the standing calls."""
    from gridsvc.supervision.models import InboxMessage

    day = day or timezone.localdate()
    hid = getattr(household, "pk", household)
    needs = household_needs([hid]).get(hid, []) if needs is None else needs
    if fresh and not needs:  # a new case or task to a household needing no interpreter
        return []
    spoken = (
        languages_spoken([assignee_id], day).get(assignee_id, set()) if spoken is None else spoken
    )
    target = {"case": case} if case is not None else {"visit_task": visit_task}
    existing = {c.language: c for c in InterpreterCall.objects.filter(**target)}
    missing = uncovered(needs, spoken) if assignee_id else []
    if not missing and not existing:
        return []
    from gridsvc.territory.models import Household

    hh = household if isinstance(household, Household) else Household.objects.get(pk=hid)
    grid = hh.unit.building.grid
    if grid is None:
        return []
    team = _interpreters(grid.community_id, grid.pk, day) if missing else {}
    wanted: dict[str, TeamMembership | None] = {}
    for langs in missing:
        lang = next((c for c in langs if c in team), langs[0])
        wanted[lang] = team.get(lang)
    InterpreterCall.objects.filter(**target).exclude(language__in=list(wanted)).delete()
    owner = case if case is not None else visit_task
    calls, told = [], []
    for lang, interpreter in wanted.items():
        call = existing.get(lang)
        if call is None:
            call = InterpreterCall(
                **target,
                household_id=hid,
                language=lang,
                street_id=grid.community.street_id,
                community_id=grid.community_id,
                grid_id=grid.pk,
                recorded_by_id=getattr(recorded_by, "pk", None) or assignee_id,
            )
        changed = call.pk is None or (call.interpreter_id, call.assignee_id) != (
            getattr(interpreter, "pk", None),
            assignee_id,
        )
        call.interpreter, call.assignee_id = interpreter, assignee_id
        call.save()
        calls.append(call)
        if changed and interpreter is not None and interpreter.member_id:
            told.append((interpreter.member_id, lang))
    if notify and told:
        what = f"案件 {owner.number}" if case is not None else f"走访任务 {owner.pk}"
        InboxMessage.objects.bulk_create(
            [
                InboxMessage(
                    member_id=mid,
                    kind=InboxMessage.Kind.OTHER,
                    title=f"请翻译随行({language_name(lang)}): {what}"[:200],
                    body="住户有居民需要民族语言翻译,承办人不通此语言",
                    object_type="case" if case is not None else "visit_task",
                    object_id=str(owner.pk),
                )
                for mid, lang in told
            ]
        )
    return calls


def attach_to_new_tasks(tasks: Iterable[Any], day: date | None = None) -> int:
    """After visit tasks are generated: attach interpreters to those going to a household
    with residents needing one whose assignee does not speak their language (open tasks
    only; the interpreters are told). Returns how many calls stand."""
    tasks = [t for t in tasks if t.household_id is not None]
    needs = household_needs({t.household_id for t in tasks})
    tasks = [t for t in tasks if t.household_id in needs]
    if not tasks:
        return 0
    day = day or timezone.localdate()
    spoken = languages_spoken({t.assigned_member_id for t in tasks}, day)
    n = 0
    for t in tasks:
        open_now = t.status in ("open", "overdue") and t.period_end >= day
        calls = attach_interpreters(
            household=t.household_id,
            assignee_id=t.assigned_member_id,
            visit_task=t,
            day=day,
            notify=open_now,
            needs=needs[t.household_id],
            spoken=spoken.get(t.assigned_member_id, set()),
        )
        n += len(calls)
    return n


def calls_as_dicts(calls: Iterable[InterpreterCall]) -> list[dict[str, Any]]:
    out = []
    for c in calls:
        t = c.interpreter
        out.append(
            {
                "call": c.pk,
                "language": c.language,
                "language_name": language_name(c.language),
                "interpreter": t.pk if t else None,
                "member": t.member_id if t else None,
                "name": (str(t.member) if t.member else t.name) if t else None,
            }
        )
    return out
