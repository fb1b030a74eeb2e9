"""Status history of residents (身份/人群状态变更记录): 低保, 社区矫正, 两劳帮教, 残疾 … with dates.

A resident's ``tags`` say what holds *now*. :class:`ResidentStatus` keeps every period a tag
held: from which day (``valid_from``; empty = held before the history was kept), to which day
(``valid_to``, exclusive: the first day it no longer held; empty = still holds), who recorded
the change and why, for the start and for the end.

Every save of a :class:`~gridsvc.territory.models.Resident` that changes its tags records the
change here (a ``post_save`` receiver), whatever the path: the API, the roster import, the admin,
a shell. Who and why come from :func:`status_change` around the save (the API and the roster
import set it); the day defaults to today. A bulk write that bypasses ``save()`` (the demo
loader, the city generator) records its tags with :func:`record_initial` or not at all.

Figures for a past period read the tags as they were on its last day (:func:`tag_held_on`):
a tag with no history at all for a resident (written by a path that bypassed ``save()``) is
taken as held since always, so such data is counted as it is now.

Need-to-know: history rows are sensitive exactly as the tags are (a closed 社区矫正 row tells a
correction record); no endpoint serves them to neighbours.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import date
from typing import Any

from django.db.models import Exists, OuterRef, Q
from django.db.models.signals import post_init, post_save
from django.dispatch import receiver
from django.utils import timezone

from .models import Resident, ResidentStatus

BEFORE_HISTORY = "记录启用前已有"  # the reason on a row whose start predates the history


# ---------------------------------------------------------------- who and why
@dataclass(frozen=True)
class StatusChange:
    actor: Any = None
    reason: str = ""
    on: date | None = None  # None: today
    initial: bool = False  # the tags held before the history was kept (valid_from empty)


_CURRENT: contextvars.ContextVar[StatusChange] = contextvars.ContextVar(
    "gridsvc_status_change",
    default=StatusChange(),  # noqa: B039 (frozen)
)


@contextlib.contextmanager
def status_change(
    actor: Any = None, reason: str = "", *, on: date | None = None, initial: bool = False
) -> Iterator[StatusChange]:
    """Who changes residents' tags, why, and from which day (default today), for every save
    inside the block."""
    token = _CURRENT.set(
        StatusChange(actor if getattr(actor, "pk", None) else None, reason[:200], on, initial)
    )
    try:
        yield _CURRENT.get()
    finally:
        _CURRENT.reset(token)


def _today() -> date:
    return timezone.localdate()


# ---------------------------------------------------------------- recording
def record_tag_change(
    resident: Resident,
    old: Iterable[str],
    new: Iterable[str],
    change: StatusChange | None = None,
) -> None:
    """Record the tags ``resident`` gained and lost (``old`` → ``new``) in the history."""
    change = change or _CURRENT.get()
    old_set, new_set = set(old), set(new)
    gained, lost = new_set - old_set, old_set - new_set
    if not gained and not lost:
        return
    day = change.on or _today()
    now = timezone.now()
    rows = ResidentStatus.objects.filter(resident=resident)
    open_rows = {r.tag: r for r in rows.filter(valid_to__isnull=True, tag__in=gained | lost)}
    for tag in sorted(lost):
        row = open_rows.get(tag)
        if row is None:  # held before the history was kept (a bulk load): its end is known
            row = ResidentStatus(resident=resident, tag=tag, valid_from=None, reason=BEFORE_HISTORY)
        if row.valid_from is not None and day < row.valid_from:
            day_end = row.valid_from  # a back-dated end never precedes the start
        else:
            day_end = day
        row.valid_to, row.ended_by, row.end_reason, row.ended_at = (
            day_end,
            change.actor,
            change.reason,
            now,
        )
        row.save()
    ResidentStatus.objects.bulk_create(
        [
            ResidentStatus(
                resident=resident,
                tag=tag,
                valid_from=None if change.initial else day,
                changed_by=change.actor,
                reason=change.reason or (BEFORE_HISTORY if change.initial else ""),
                recorded_at=now,
            )
            for tag in sorted(gained)
            if tag not in open_rows
        ]
    )


def record_initial(residents: Iterable[Resident], reason: str = BEFORE_HISTORY) -> int:
    """Open rows, held since before the history (``valid_from`` empty), for the tags of
    residents written in bulk (``bulk_create`` bypasses ``save()``). Returns rows written."""
    rows = [
        ResidentStatus(resident_id=r.pk, tag=t, valid_from=None, reason=reason)
        for r in residents
        for t in dict.fromkeys(r.tags)
    ]
    ResidentStatus.objects.bulk_create(rows, batch_size=2000)
    return len(rows)


@receiver(post_init, sender=Resident)
def _remember_tags(sender, instance: Resident, **kwargs) -> None:  # type: ignore[no-untyped-def]
    # the tags as loaded (deferred tags are not read: that would cost a query per row)
    if "tags" in instance.__dict__ and instance.pk is not None:
        instance._status_tags = list(instance.tags or [])


@receiver(post_save, sender=Resident)
def _record_on_save(
    sender, instance: Resident, created: bool, update_fields=None, raw=False, **kwargs
) -> None:  # type: ignore[no-untyped-def]  # noqa: E501
    if raw or (update_fields is not None and "tags" not in update_fields):
        return
    new = list(instance.tags or [])
    if created:
        old: list[str] = []
    else:
        old = getattr(instance, "_status_tags", None)
        if old is None:  # not loaded with its tags: what the history says held until now
            rows = list(
                ResidentStatus.objects.filter(resident=instance).values_list("tag", "valid_to")
            )
            known = {t for t, _ in rows}
            old = [t for t, end in rows if end is None] + [t for t in new if t not in known]
    record_tag_change(instance, old, new)
    instance._status_tags = new


# ---------------------------------------------------------------- reading
def held_on_q(day: date) -> Q:
    """History rows that held on ``day`` (a whole day: started on or before, ended after)."""
    return (Q(valid_from__isnull=True) | Q(valid_from__lte=day)) & (
        Q(valid_to__isnull=True) | Q(valid_to__gt=day)
    )


def tag_held_on(tag: str, day: date) -> Q:
    """A condition on residents: the resident held ``tag`` on ``day`` — by the history, or,
    with no history at all for that tag, by the current tags (taken as held since always)."""
    rows = ResidentStatus.objects.filter(resident=OuterRef("pk"), tag=tag)
    return Q(Exists(rows.filter(held_on_q(day)))) | (Q(tags__contains=[tag]) & ~Q(Exists(rows)))


def tags_on(resident: Resident, day: date) -> list[str]:
    """The tags ``resident`` held on ``day`` (by the history; tags without history: as now)."""
    rows = list(ResidentStatus.objects.filter(resident=resident))
    with_history = {r.tag for r in rows}
    held = {
        r.tag
        for r in rows
        if (r.valid_from is None or r.valid_from <= day)
        and (r.valid_to is None or r.valid_to > day)
    }
    held |= {t for t in resident.tags if t not in with_history}
    return [t for t in Resident.Tag.values if t in held]
