"""Recording visits from the phone (走访记录上传), one at a time or in offline batches.

Each item ends as exactly one of:

- ``accepted``: stored (a new row), its matching open task(s) closed, cases opened for
  findings with ``open_case``;
- ``duplicate``: the same client UUID with the same content is already stored (no new row);
- ``conflict``: the same client UUID with different content is stored; reported, never
  overwritten;
- ``rejected``: invalid; ``errors`` names the field(s), ``code`` says why.

What an item is (fields, limits) is defined once, as DRF serializers, in
``api/visits/serializers.py`` (validation and the OpenAPI schema); they hand
:func:`record_visits` validated :class:`VisitInput` items, and ``rejected`` results
(``code: invalid``) for the items that are not.

Times (the phone's clock is not trusted, see :mod:`gridsvc.sync.clock`): the phone sends
its clock with the upload (``X-Device-Time``); each visit's ``client_time`` is corrected by
the phone's offset and stored on the server's clock, the phone's own value, the receive time
and the offset are kept in :class:`gridsvc.sync.models.VisitClock`, and implausible times
are flagged (``time_flag``: ``future``, ``before_task_window``, ``too_old``), never refused.
The content hash (duplicate vs conflict) is taken over the time as the phone sent it, so a
retry judged with a slightly different offset is still a duplicate.

Territory is judged at the time the visit was made (交接): a visit is accepted when its
household is in the member's territory now, or was when the visit was made (the clock-corrected
time, against the position history: :meth:`gridsvc.chain.models.PositionQuerySet.held_at`), so
visits recorded before a hand-over are stored after it, and the new holder sees them (they are
in the household's territory). A post left more than ``GRIDSVC["VISIT_HANDOVER_UPLOAD_DAYS"]``
(30) days before the upload no longer counts. A visit for a time when the member held no post over the
household (nor holds one now) is rejected with ``code: not_in_territory``.

The task link (``task_link`` in the item result) never rejects a visit: ``linked`` (the named
or matching task is closed by this visit), ``task_reassigned`` (the named task is open but now
assigned to another member: closed by this visit all the same, the household was visited),
``task_closed`` (the named task was closed meanwhile — done by another visit, or missed for a
day after the visit; the visit is stored without the link) or ``no_task`` (no task named and
none open for the household on the visit's day). A task marked missed while the phone was
offline is closed by a visit made in time (on or before the period's last day + grace).

Set-based (批量入库): the cost of a batch does not grow in queries with its size. The whole
batch is judged in Python and a few set-based queries (stored UUIDs, territory now and in the
position history, residents, participants, rules, the households' open tasks); the task each
visit closes is planned in batch order (the first visit of a household takes its task); then
one ``INSERT … ON CONFLICT (client_uuid) DO NOTHING … RETURNING`` stores every visit with its
distance to the building's footprint (PostGIS, geography: 0 inside it) and its clock row, and
one ``UPDATE`` closes every linked task. Statement-level triggers on the visit table (the
layers' tile-cache invalidation) therefore run once per batch. Only an item whose findings
open cases gets a savepoint of its own (a refused report rejects that item alone). A UUID
stored by a concurrent upload between the check and the insert is answered as a duplicate or
conflict; if the batch statement fails on an integrity error the batch is stored again item
by item, each in a savepoint, and the item that cannot be stored is ``rejected`` with
``code: not_stored`` (foreign keys are checked at commit, as Django creates them deferred:
the references are checked in the judging queries before).
"""

from __future__ import annotations

import hashlib
import io
import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from django.conf import settings
from django.contrib.gis.geos import Point
from django.core.files.base import ContentFile
from django.db import IntegrityError, connection, transaction
from django.db.models import Q
from django.utils import timezone

from gridsvc.chain.models import Position
from gridsvc.sync.clock import FUTURE_TOLERANCE, MAX_AGE, RequestClock
from gridsvc.sync.clock import current as current_clock
from gridsvc.sync.models import VisitClock
from gridsvc.territory.models import Building, Household, Resident, Unit

from .models import Visit, VisitPhoto, VisitRule, VisitTask

MAX_BATCH = 500
MAX_PHOTO_BYTES = 5 * 1024 * 1024
MAX_PHOTOS = 10
MAX_FINDINGS = 20
# A visit for an explicit task may be dated this long before the task's period starts
# before it is flagged (time zones, a visit just before midnight).
TASK_WINDOW_SLACK = timedelta(days=1)

# ``task_link`` of an accepted item (docs/visits.md)
LINKED = "linked"
TASK_CLOSED = "task_closed"
TASK_REASSIGNED = "task_reassigned"
NO_TASK = "no_task"

# ``code`` of a rejected or conflicting item (machine-readable; ``errors`` has the words)
CODE_INVALID = "invalid"
CODE_NOT_IN_TERRITORY = "not_in_territory"
CODE_UNKNOWN_TASK = "unknown_task"
CODE_CONFLICT = "conflict"
CODE_NOT_STORED = "not_stored"
CRS_CHOICES = ("wgs84", "gcj02", "bd09", "cgcs2000")


def far_off_threshold_m() -> float:
    return float(getattr(settings, "GRIDSVC", {}).get("VISIT_FAR_OFF_M", 150.0))


class ItemError(Exception):
    """Invalid item: ``errors`` maps field → message."""

    def __init__(self, errors: dict[str, Any]):
        super().__init__(errors)
        self.errors = errors


@dataclass
class PhotoInput:
    data: bytes
    content_type: str
    sha256: str
    exif_point: tuple[float, float] | None = None
    exif_time: str = ""


@dataclass
class VisitInput:
    """A validated, normalised item."""

    index: int
    client_uuid: uuid.UUID
    household: int
    client_time: datetime  # as the phone sent it
    resident: int | None = None
    task: int | None = None
    rule: int | None = None
    rule_code: str = ""  # a rule named by code, resolved with the batch
    lon: float | None = None  # as sent, in ``crs``
    lat: float | None = None
    crs: str = "wgs84"
    accuracy_m: float | None = None
    purpose: str = ""
    notes: str = ""
    findings: list[dict[str, Any]] = field(default_factory=list)
    participant_members: list[int] = field(default_factory=list)
    participants_text: str = ""
    photos: list[PhotoInput] = field(default_factory=list)
    content_hash: str = ""
    # derived
    wgs84: tuple[float, float] | None = None
    location_source: str = ""
    time: datetime | None = None  # client_time on the server's clock
    time_corrected: bool = False
    time_flag: str = ""
    task_link: str = ""
    # while storing (record_visits)
    named_link: str = LINKED  # what the named task's link would be if it is closed
    open_tasks: list[Any] = field(default_factory=list)  # the household's closable tasks
    closing: list[int] = field(default_factory=list)  # task ids this visit closes
    inserted_task: int | None = None  # task_id the row was inserted with
    case_ids: list[int] | None = None  # cases opened for its findings (None: none asked)

    def canonical(self, member_id: int) -> dict[str, Any]:
        return {
            "member": member_id,
            "client_uuid": str(self.client_uuid),
            "household": self.household,
            "resident": self.resident,
            "task": self.task,
            "rule": self.rule,
            "client_time": self.client_time.astimezone(UTC).isoformat(),
            "lon": None if self.lon is None else round(self.lon, 7),
            "lat": None if self.lat is None else round(self.lat, 7),
            "crs": self.crs,
            "accuracy_m": self.accuracy_m,
            "purpose": self.purpose,
            "notes": self.notes,
            "findings": self.findings,
            "participant_members": sorted(self.participant_members),
            "participants_text": self.participants_text,
            "photos": sorted(p.sha256 for p in self.photos),
        }


@dataclass
class ItemResult:
    index: int
    status: str  # accepted | duplicate | conflict | rejected
    client_uuid: str | None = None
    id: int | None = None
    errors: dict[str, Any] | None = None
    far_off: bool | None = None
    distance_m: float | None = None
    closed_tasks: list[int] = field(default_factory=list)
    case_ids: list[int] = field(default_factory=list)
    visit: Visit | None = None
    client_time: datetime | None = None
    time_corrected: bool = False
    time_flag: str = ""
    code: str | None = None
    task_link: str | None = None

    def __post_init__(self) -> None:
        if self.code is None and self.status == "rejected":
            self.code = CODE_INVALID
        elif self.code is None and self.status == "conflict":
            self.code = CODE_CONFLICT

    def as_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "index": self.index,
            "client_uuid": self.client_uuid,
            "status": self.status,
            "id": self.id,
        }
        if self.code:
            d["code"] = self.code
        if self.errors:
            d["errors"] = self.errors
        if self.status == "accepted":
            d.update(
                far_off=self.far_off,
                distance_m=self.distance_m,
                closed_tasks=self.closed_tasks,
                case_ids=self.case_ids,
                client_time=self.client_time.isoformat() if self.client_time else None,
                time_corrected=self.time_corrected,
                time_flag=self.time_flag or None,
                task_link=self.task_link,
            )
        return d


# ---------------------------------------------------------------- input helpers
def maybe_json(raw: Any, name: str = "non_field_errors") -> Any:
    """Multipart forms carry lists as JSON strings. Same limits as a JSON body (api/parsers):
    too deeply nested is not JSON here, and no NUL character in it (PostgreSQL refuses it)."""
    if isinstance(raw, str) and raw[:1] in "[{":
        try:
            value = json.loads(raw)
        except (ValueError, RecursionError):
            return raw
        if has_nul(value):
            raise ItemError({name: "must not contain the NUL character (\\u0000)"})
        return value
    return raw


def has_nul(value: Any) -> bool:
    stack = [value]
    while stack:
        v = stack.pop()
        if isinstance(v, str):
            if "\x00" in v:
                return True
        elif isinstance(v, dict):
            stack.extend(v.keys())
            stack.extend(v.values())
        elif isinstance(v, list):
            stack.extend(v)
    return False


def sniff_image(data: bytes) -> str | None:
    """Image type by magic bytes: image/jpeg, image/png, or None."""
    if data[:3] == b"\xff\xd8\xff":
        return "image/jpeg"
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        return "image/png"
    return None


def _ratio(v: Any) -> float:
    try:
        return float(v)
    except (TypeError, ValueError, ZeroDivisionError):
        num, den = v
        return float(num) / float(den)


def read_exif_gps(data: bytes) -> tuple[tuple[float, float] | None, str]:
    """(lon, lat) in WGS84 from a photo's EXIF GPS block, and its DateTimeOriginal, if any."""
    try:
        from PIL import Image

        with Image.open(io.BytesIO(data)) as img:
            exif = img.getexif()
            gps = exif.get_ifd(0x8825)
            taken = str(exif.get_ifd(0x8769).get(0x9003, "") or exif.get(0x0132, "") or "")
    except Exception:  # noqa: BLE001 - a broken EXIF block never rejects a photo
        return None, ""
    try:
        if 2 in gps and 4 in gps:
            lat = sum(_ratio(x) / d for x, d in zip(gps[2], (1, 60, 3600), strict=False))
            lon = sum(_ratio(x) / d for x, d in zip(gps[4], (1, 60, 3600), strict=False))
            if str(gps.get(1, "N")).upper().startswith("S"):
                lat = -lat
            if str(gps.get(3, "E")).upper().startswith("W"):
                lon = -lon
            if -90 <= lat <= 90 and -180 <= lon <= 180 and (lat or lon):
                return (lon, lat), taken[:32]
    except (TypeError, ValueError, ZeroDivisionError):
        pass
    return None, taken[:32]


def parse_photo(data: bytes, name: str = "photos") -> PhotoInput:
    """Check size and type (magic bytes) and read EXIF GPS."""
    if len(data) > MAX_PHOTO_BYTES:
        raise ItemError({name: f"a photo is at most {MAX_PHOTO_BYTES // (1024 * 1024)} MB"})
    if not data:
        raise ItemError({name: "empty photo"})
    ctype = sniff_image(data)
    if ctype is None:
        raise ItemError({name: "only JPEG and PNG photos are accepted"})
    point, taken = read_exif_gps(data)
    return PhotoInput(data, ctype, hashlib.sha256(data).hexdigest(), point, taken)


def convert_to_wgs84(lon: float, lat: float, crs: str) -> tuple[float, float]:
    """WGS84 (lon, lat) from input in ``crs`` with :mod:`geo.crs`; ItemError naming ``crs``."""
    if crs == "wgs84":
        return lon, lat
    try:
        from geo.crs import UnsupportedCRS, to_wgs84
    except ImportError:  # geo.crs not installed on this server yet
        raise ItemError({"crs": f"{crs} input cannot be converted here yet; send wgs84"}) from None
    try:
        x, y = to_wgs84(lon, lat, crs)
    except UnsupportedCRS:
        raise ItemError({"crs": "unsupported coordinate system"}) from None
    return float(x), float(y)


def _judge(accuracy: float | None) -> str:
    if accuracy is None:
        return ""
    try:
        from geo.accuracy import judge_gps_accuracy
    except ImportError:  # geo.accuracy not installed yet: the raw accuracy is still kept
        return ""

    verdict = judge_gps_accuracy(accuracy)
    return str(getattr(verdict, "value", None) or getattr(verdict, "grade", None) or verdict)[:16]


def judge_time(item: VisitInput, clock: RequestClock) -> None:
    """Put ``client_time`` on the server's clock and flag an implausible result (设备时钟校正).

    After correction, a time after the receive time (+ :data:`FUTURE_TOLERANCE`) is flagged
    ``future`` and stored as the receive time (the visit cannot have happened later); one
    more than :data:`MAX_AGE` before it is flagged ``too_old``."""
    time, item.time_corrected = clock.correct(item.client_time)
    received = clock.received_at
    if time > received + FUTURE_TOLERANCE:
        item.time_flag, time = VisitClock.Flag.FUTURE, received
    elif time < received - MAX_AGE:
        item.time_flag = VisitClock.Flag.TOO_OLD
    item.time = time


def handover_upload_window() -> timedelta:
    """How long after leaving a post its visits are still accepted (交接后补传期限)."""
    days = getattr(settings, "GRIDSVC", {}).get("VISIT_HANDOVER_UPLOAD_DAYS", 30)
    return timedelta(days=float(days))


def households_held_at(
    member,  # type: ignore[no-untyped-def]
    items: list[VisitInput],
    received_at: datetime | None = None,
) -> set[int]:
    """Indexes of ``items`` whose household was in ``member``'s territory when the visit was
    made (``item.time``, on the server's clock), from the position history (岗位任职记录:
    ``Position.valid_from`` / ``valid_to``, as :meth:`PositionQuerySet.held_at`).

    A post left more than :func:`handover_upload_window` before ``received_at`` no longer
    counts: a phone offline for a few days after a hand-over uploads its visits; a member who
    left long ago does not write into the old territory. One query for the member's positions
    over the items' time span, then one territory query per distinct set of positions held
    (usually one: the post before the hand-over)."""
    from gridsvc.chain.scope import Scope

    items = [i for i in items if i.time is not None]
    if not items:
        return set()
    times = [i.time for i in items]
    cutoff = (received_at or timezone.now()) - handover_upload_window()
    rows = {
        row[0]: row
        for row in Position.objects.filter(member=member, valid_from__lte=max(times))
        .filter(Q(valid_to__isnull=True) | Q(valid_to__gt=max(min(times), cutoff)))
        .values_list(
            "id",
            "valid_from",
            "valid_to",
            "street_id",
            "community_id",
            "grid_id",
            "compound_id",
            "building_id",
            "unit_id",
        )
    }
    groups: dict[frozenset[int], list[VisitInput]] = {}
    for item in items:
        held = frozenset(
            pid
            for pid, start, end, *_ in rows.values()
            if start <= item.time and (end is None or end > item.time)  # type: ignore[operator]
        )
        if held:
            groups.setdefault(held, []).append(item)
    ok: set[int] = set()
    for held, group in groups.items():
        then = Scope()
        for pid in held:
            street, community, grid, compound, building, unit = rows[pid][3:]
            for ids, value in (
                (then.street_ids, street),
                (then.community_ids, community),
                (then.grid_ids, grid),
                (then.compound_ids, compound),
                (then.building_ids, building),
                (then.unit_ids, unit),
            ):
                if value:
                    ids.add(value)
        found = set(
            then.filter(Household.objects.filter(id__in={i.household for i in group})).values_list(
                "id", flat=True
            )
        )
        ok |= {i.index for i in group if i.household in found}
    return ok


# ---------------------------------------------------------------- tasks
@dataclass(slots=True)
class OpenTask:
    """A task a visit may close (the columns the rules read; no model instance)."""

    id: int
    household_id: int
    rule_id: int
    status: str
    period_start: date
    period_end: date
    grace_days: int
    assigned_member_id: int | None


_CLOSABLE = (VisitTask.Status.OPEN, VisitTask.Status.OVERDUE, VisitTask.Status.MISSED)


def _tasks(qs) -> list[OpenTask]:  # type: ignore[no-untyped-def]
    return [
        OpenTask(*row)
        for row in qs.values_list(
            "id",
            "household_id",
            "rule_id",
            "status",
            "period_start",
            "period_end",
            "rule__grace_days",
            "assigned_member_id",
        )
    ]


def _closable_on(task: OpenTask, day: date) -> bool:
    """Whether a visit on ``day`` counts for ``task``: an open or overdue task always (the
    visit was made for it); a missed one if the visit was made in time (by the period's last
    day + the rule's grace), i.e. it was marked missed while the phone was offline."""
    if task.status in (VisitTask.Status.OPEN, VisitTask.Status.OVERDUE):
        return True
    if task.status == VisitTask.Status.MISSED:
        return day <= task.period_end + timedelta(days=task.grace_days)
    return False


def _task_link(member, item: VisitInput, task: OpenTask) -> str:  # type: ignore[no-untyped-def]
    """What happens to the link to the task the visit names (never a rejection)."""
    if not _closable_on(task, timezone.localdate(item.time or item.client_time)):
        return TASK_CLOSED
    if task.assigned_member_id not in (None, member.id):
        return TASK_REASSIGNED
    return LINKED


def _matching_tasks(item: VisitInput, open_tasks: list[OpenTask]) -> list[OpenTask]:
    day = timezone.localdate(item.time or item.client_time)
    if item.task is not None:
        return [t for t in open_tasks if t.id == item.task and _closable_on(t, day)]
    candidates = [
        t for t in open_tasks if t.period_start <= day <= t.period_end and _closable_on(t, day)
    ]
    if item.rule is not None:
        candidates = [t for t in candidates if t.rule_id == item.rule]
    return candidates


def content_hash(item: VisitInput, member_id: int) -> str:
    """SHA-256 of the normalised item (:meth:`VisitInput.canonical`): duplicate vs conflict."""
    return hashlib.sha256(
        json.dumps(item.canonical(member_id), sort_keys=True, ensure_ascii=False).encode()
    ).hexdigest()


# ---------------------------------------------------------------- recording
def _rejected(item: VisitInput, errors: dict[str, Any], code: str | None = None) -> ItemResult:
    return ItemResult(item.index, "rejected", str(item.client_uuid), errors=errors, code=code)


def record_visits(
    member,  # type: ignore[no-untyped-def]
    items: Sequence[VisitInput | ItemResult],
    scope,  # type: ignore[no-untyped-def]
    clock: RequestClock | None = None,
) -> list[ItemResult]:
    """Judge and store validated visits; one result per item, in order (see the module
    docstring). ``items``: what ``api/visits/serializers.validate_items`` made of the upload —
    a :class:`VisitInput` per valid item, a ``rejected`` :class:`ItemResult` per invalid one.

    ``clock``: the upload's receive time and the phone's clock (default: the current
    request's, set by :class:`gridsvc.sync.middleware.ServerTimeMiddleware`)."""
    clock = clock or current_clock()
    now = clock.received_at
    results: dict[int, ItemResult] = {}
    parsed: list[VisitInput] = []
    for it in items:
        if isinstance(it, ItemResult):
            results[it.index] = it
        else:
            parsed.append(it)

    # rules named by code (one query)
    codes = {i.rule_code for i in parsed if i.rule_code}
    if codes:
        by_code = dict(VisitRule.objects.filter(code__in=codes).values_list("code", "id"))
        for item in parsed:
            if item.rule_code:
                item.rule = by_code.get(item.rule_code)
                if item.rule is None:
                    results[item.index] = _rejected(item, {"rule": "unknown rule"})
        parsed = [i for i in parsed if i.index not in results]
    for item in parsed:
        item.content_hash = content_hash(item, member.id)
        judge_time(item, clock)

    # idempotency: what is stored already (one query)
    stored = {
        row[0]: (row[1], row[2])
        for row in Visit.objects.filter(
            client_uuid__in=[p.client_uuid for p in parsed]
        ).values_list("client_uuid", "content_hash", "id")
    }
    fresh: list[VisitInput] = []
    seen: dict[uuid.UUID, VisitInput] = {}
    repeat_of: dict[int, int] = {}  # index of an in-batch repeat → index of the first copy
    for item in parsed:
        key = item.client_uuid
        if key in stored:
            results[item.index] = _repeat(item, *stored[key])
        elif key in seen:
            results[item.index] = _repeat(item, seen[key].content_hash, None)
            repeat_of[item.index] = seen[key].index
        else:
            seen[key] = item
            fresh.append(item)

    valid = _judge_items(member, fresh, scope, now, results)
    if valid:
        try:
            with transaction.atomic():
                _store_batch(member, valid, clock, results)
        except IntegrityError:  # a constraint the statement breaks: item by item
            for item in valid:
                try:
                    with transaction.atomic():
                        _store_batch(member, [item], clock, results)
                except IntegrityError:
                    results[item.index] = _rejected(
                        item,
                        {"non_field_errors": "could not be stored (conflicting data)"},
                        CODE_NOT_STORED,
                    )

    # in-batch repeats point at the stored first copy (if it was stored)
    for index, first_index in repeat_of.items():
        first = results[first_index]
        if first.status == "accepted":
            results[index].id = first.id
        else:
            results[index] = ItemResult(
                index,
                "rejected",
                first.client_uuid,
                errors={"client_uuid": f"repeats item {first_index}, which was not stored"},
                code=CODE_NOT_STORED,
            )
    return [results[i] for i in range(len(items))]


def _judge_items(
    member,  # type: ignore[no-untyped-def]
    fresh: list[VisitInput],
    scope,  # type: ignore[no-untyped-def]
    now: datetime,
    results: dict[int, ItemResult],
) -> list[VisitInput]:
    """Territory (now or when the visit was made), residents, participants, rules and task
    references of the new items, in set-based queries; the refused ones go to ``results``.
    Sets ``item.open_tasks`` (the household's closable tasks) of the ones returned."""
    if not fresh:
        return []
    # territory and references (one query each); the territory is judged now and, for the
    # rest, when each visit was made (a visit from before a hand-over counts)
    hh_ids = {i.household for i in fresh}
    visible = set(
        scope.filter(Household.objects.filter(id__in=hh_ids)).values_list("id", flat=True)
    )
    held_then = households_held_at(member, [i for i in fresh if i.household not in visible], now)
    allowed = {i.index for i in fresh if i.household in visible or i.index in held_then}
    allowed_hh = {i.household for i in fresh if i.index in allowed}
    wanted_res = {i.resident for i in fresh if i.resident}
    res_home = (
        dict(Resident.objects.filter(id__in=wanted_res).values_list("id", "household_id"))
        if wanted_res
        else {}
    )
    covered = _participant_check(fresh, allowed_hh, now)
    rule_ids = (
        set(VisitRule.objects.values_list("id", flat=True))
        if any(i.rule is not None for i in fresh)
        else set()
    )
    # the tasks named, and the closable ones whose period covers a visit's day (one query)
    explicit = {i.task for i in fresh if i.task is not None}
    days = [timezone.localdate(i.time or i.client_time) for i in fresh if i.index in allowed]
    wanted = Q(id__in=explicit) if explicit else Q(pk__in=[])
    if days:
        wanted |= Q(
            household__in=allowed_hh,
            status__in=_CLOSABLE,
            period_start__lte=max(days),
            period_end__gte=min(days),
        )
    named: dict[int, OpenTask] = {}
    tasks_of: dict[int, list[OpenTask]] = {}
    for t in _tasks(VisitTask.objects.filter(wanted)) if explicit or days else []:
        if t.id in explicit:
            named[t.id] = t
        if t.household_id in allowed_hh and t.status in _CLOSABLE:
            tasks_of.setdefault(t.household_id, []).append(t)

    valid: list[VisitInput] = []
    for item in fresh:
        err, code = None, None
        if item.index not in allowed:
            err, code = (
                {
                    "household": "no such household in your territory (now or when the visit "
                    "was made)"
                },
                CODE_NOT_IN_TERRITORY,
            )
        elif item.resident and res_home.get(item.resident) != item.household:
            err = {"resident": "not a resident of this household"}
        elif any(not covered(m, item) for m in item.participant_members):
            err = {"participant_members": "unknown member id"}
        elif item.rule is not None and item.rule not in rule_ids:
            err = {"rule": "unknown rule"}
        elif item.task is not None:
            task = named.get(item.task)
            if task is None or task.household_id != item.household:
                err, code = {"task": "no such task for this household"}, CODE_UNKNOWN_TASK
            else:
                item.named_link = _task_link(member, item, task)
                if (
                    item.named_link != TASK_CLOSED
                    and not item.time_flag
                    and timezone.localdate(item.time) < (task.period_start - TASK_WINDOW_SLACK)
                ):
                    item.time_flag = VisitClock.Flag.BEFORE_TASK_WINDOW
        if err:
            results[item.index] = _rejected(item, err, code)
        else:
            item.open_tasks = tasks_of.get(item.household, [])
            valid.append(item)
    return valid


def _participant_check(fresh: list[VisitInput], allowed_hh: set[int], now: datetime):  # type: ignore[no-untyped-def]
    """``covered(member_id, item)``: a participant of a joint visit holds a position over the
    visited household now or did when the visit was made (its chain); anyone else reads like
    an unknown id (issue 15 item 7: ids through the scope). Queries only when a batch names
    participants."""
    wanted = {m for i in fresh for m in i.participant_members}
    if not wanted:
        return lambda m, item: False
    from django.contrib.auth import get_user_model

    from gridsvc.chain.scope import scope_for

    participants = {m.pk: m for m in get_user_model().objects.filter(id__in=wanted, is_active=True)}
    covers = {
        pk: set(
            scope_for(m)
            .filter(Household.objects.filter(id__in=allowed_hh))
            .values_list("id", flat=True)
        )
        for pk, m in participants.items()
    }

    def covered(m: int, item: VisitInput) -> bool:
        if item.household in covers.get(m, ()):
            return True
        return m in participants and bool(households_held_at(participants[m], [item], now))

    return covered


def _plan_tasks(items: list[VisitInput]) -> None:
    """The task(s) each visit closes, in batch order: the first visit of a household takes its
    open task(s); a later one finds them closed (``task_closed``, or ``no_task`` when it named
    none). Sets ``item.closing`` and ``item.task_link``."""
    taken: set[int] = set()
    for item in items:
        closing = [t for t in _matching_tasks(item, item.open_tasks) if t.id not in taken]
        taken.update(t.id for t in closing)
        item.closing = [t.id for t in closing]
        if item.task is None:
            item.task_link = LINKED if closing else NO_TASK
        else:
            item.task_link = item.named_link if closing else TASK_CLOSED


def _store_batch(
    member,  # type: ignore[no-untyped-def]
    items: list[VisitInput],
    clock: RequestClock,
    results: dict[int, ItemResult],
) -> None:
    """Store ``items`` (already judged) in the current transaction: visits whose findings open
    cases one by one in a savepoint each, the others in one statement; then one UPDATE closes
    the linked tasks. Fills ``results``."""
    threshold = far_off_threshold_m()
    _plan_tasks(items)
    rows: dict[uuid.UUID, tuple[int, float | None, bool]] = {}
    refused: set[int] = set()
    for item in items:
        if not any(f.get("open_case") for f in item.findings):
            continue
        try:
            with transaction.atomic():
                got = _insert(member, [item], clock, threshold)
                if item.client_uuid in got:
                    visit_id = got[item.client_uuid][0]
                    item.case_ids = open_cases_for_findings(member, visit_id, item)
                    Visit.objects.filter(pk=visit_id).update(
                        findings=item.findings, case_ids=item.case_ids
                    )
                    rows.update(got)
        except ItemError as exc:
            results[item.index] = _rejected(item, exc.errors)
            refused.add(item.index)
    if refused:  # a refused visit closes nothing: plan again without it
        items = [i for i in items if i.index not in refused]
        _plan_tasks(items)
    plain = [i for i in items if not any(f.get("open_case") for f in i.findings)]
    if plain:
        rows.update(_insert(member, plain, clock, threshold))
    missing = [i for i in items if i.client_uuid not in rows]
    if missing:  # stored meanwhile by a concurrent upload of the same UUIDs
        again = {
            u: (h, pk)
            for u, h, pk in Visit.objects.filter(
                client_uuid__in=[i.client_uuid for i in missing]
            ).values_list("client_uuid", "content_hash", "id")
        }
        for item in missing:
            if item.client_uuid in again:
                results[item.index] = _repeat(item, *again[item.client_uuid])
            else:
                results[item.index] = _rejected(
                    item,
                    {"non_field_errors": "could not be stored (conflicting data)"},
                    CODE_NOT_STORED,
                )
    stored = [i for i in items if i.client_uuid in rows]

    # close the planned tasks (one statement); a task closed meanwhile only loses the link
    pairs = [(t, rows[i.client_uuid][0]) for i in stored for t in i.closing]
    closed: set[int] = set()
    if pairs:
        with connection.cursor() as cur:
            cur.execute(
                f"""UPDATE {VisitTask._meta.db_table} t
                       SET status = %s, done_by_id = v.visit, updated_at = %s
                      FROM unnest(%s::bigint[], %s::bigint[]) AS v(task, visit)
                     WHERE t.id = v.task AND t.status = ANY(%s::text[])
                 RETURNING t.id""",
                [
                    VisitTask.Status.DONE,
                    timezone.now(),
                    [p[0] for p in pairs],
                    [p[1] for p in pairs],
                    [str(s) for s in _CLOSABLE],
                ],
            )
            closed = {r[0] for r in cur.fetchall()}
    relink: list[tuple[int, int | None]] = []  # visits whose task is not the one inserted
    for item in stored:
        done = [t for t in item.closing if t in closed]
        if item.closing and not done:  # closed by a concurrent upload
            item.task_link = TASK_CLOSED if item.task is not None else NO_TASK
        want = done[0] if done else None
        if want != item.inserted_task:
            relink.append((rows[item.client_uuid][0], want))
        item.closing = done
    if relink:
        with connection.cursor() as cur:
            cur.execute(
                f"""UPDATE {Visit._meta.db_table} v SET task_id = r.task
                      FROM unnest(%s::bigint[], %s::bigint[]) AS r(id, task)
                     WHERE v.id = r.id""",
                [[r[0] for r in relink], [r[1] for r in relink]],
            )
    _store_participants(stored, rows)
    _store_photos(stored, rows)
    for item in stored:
        visit_id, distance, far_off = rows[item.client_uuid]
        results[item.index] = ItemResult(
            item.index,
            "accepted",
            str(item.client_uuid),
            id=visit_id,
            far_off=far_off,
            distance_m=distance,
            closed_tasks=item.closing,
            case_ids=item.case_ids or [],
            client_time=item.time or item.client_time,
            time_corrected=item.time_corrected,
            time_flag=item.time_flag,
            task_link=item.task_link,
        )


def _insert(
    member,  # type: ignore[no-untyped-def]
    items: list[VisitInput],
    clock: RequestClock,
    threshold: float,
) -> dict[uuid.UUID, tuple[int, float | None, bool]]:
    """One ``INSERT … ON CONFLICT (client_uuid) DO NOTHING … RETURNING`` of ``items`` (with
    the distance to the household's building computed in the statement) and their clock rows
    (:class:`VisitClock`) in the same statement. client UUID → (id, distance_m, far_off) of
    the rows stored; a UUID stored meanwhile is missing."""
    now = timezone.now()
    rows = []
    for i in items:
        i.inserted_task = i.closing[0] if i.closing else None
        rows.append(
            {
                "i": i.index,
                "u": str(i.client_uuid),
                "h": i.content_hash,
                "hh": i.household,
                "res": i.resident,
                "task": i.inserted_task,
                "ct": (i.time or i.client_time).isoformat(),
                "lon": i.wgs84[0] if i.wgs84 else None,
                "lat": i.wgs84[1] if i.wgs84 else None,
                "src": i.location_source,
                "crs": i.crs,
                "acc": i.accuracy_m,
                "grade": _judge(i.accuracy_m) if i.location_source == "gps" else "",
                "purpose": i.purpose,
                "notes": i.notes,
                "findings": i.findings,
                "ptext": i.participants_text,
                "sent": i.client_time.isoformat(),
                "corrected": i.time_corrected,
                "flag": str(i.time_flag or ""),
            }
        )
    params: dict[str, Any] = {
        # one parameter for the batch: PostgreSQL parses it (jsonb_to_recordset), the driver
        # does not quote 19 arrays of 500 values
        "rows": json.dumps(rows, ensure_ascii=False),
        "member": member.id,
        "now": now,
        "threshold": threshold,
        "device_time": clock.device_time,
        "received_at": clock.received_at,
        "offset_ms": clock.offset_ms,
    }
    sql = f"""
        WITH t AS (
            SELECT * FROM jsonb_to_recordset(%(rows)s::jsonb) AS t(i int, u uuid, h text, hh bigint,
                res bigint, task bigint, ct timestamptz, lon float8, lat float8, src text,
                crs text, acc float8, grade text, purpose text, notes text, findings jsonb,
                ptext text, sent timestamptz, corrected boolean, flag text)
        ), ins AS (
            INSERT INTO {Visit._meta.db_table} (client_uuid, content_hash, member_id,
                household_id, resident_id, task_id, client_time, server_time, location,
                location_source, input_crs, accuracy_m, accuracy_grade, distance_m, far_off,
                purpose, notes, findings, participants_text, case_ids, updated_at)
            SELECT t.u, t.h, %(member)s, t.hh, t.res, t.task, t.ct, %(now)s,
                   CASE WHEN t.lon IS NULL THEN NULL
                        ELSE ST_SetSRID(ST_MakePoint(t.lon, t.lat), 4326) END,
                   t.src, t.crs, t.acc, t.grade, round(d.m::numeric, 2)::float8,
                   coalesce(d.m > %(threshold)s, false), t.purpose, t.notes, t.findings,
                   t.ptext, '[]'::jsonb, %(now)s
              FROM t
              LEFT JOIN LATERAL (
                SELECT ST_Distance(ST_SetSRID(ST_MakePoint(t.lon, t.lat), 4326)::geography,
                                   b.footprint::geography) AS m
                  FROM {Household._meta.db_table} h
                  JOIN {Unit._meta.db_table} u ON u.id = h.unit_id
                  JOIN {Building._meta.db_table} b ON b.id = u.building_id
                 WHERE h.id = t.hh AND t.lon IS NOT NULL
              ) d ON true
             ORDER BY t.i
            ON CONFLICT (client_uuid) DO NOTHING
            RETURNING id, client_uuid, distance_m, far_off
        ), clk AS (
            INSERT INTO {VisitClock._meta.db_table} (visit_id, sent_time, device_time,
                received_at, offset_ms, corrected, flag)
            SELECT ins.id, t.sent, %(device_time)s, %(received_at)s, %(offset_ms)s,
                   t.corrected, t.flag
              FROM ins JOIN t ON t.u = ins.client_uuid
        )
        SELECT id, client_uuid, distance_m, far_off FROM ins
    """
    with connection.cursor() as cur:
        cur.execute(sql, params)
        return {
            (u if isinstance(u, uuid.UUID) else uuid.UUID(str(u))): (pk, dist, far)
            for pk, u, dist, far in cur.fetchall()
        }


def _store_participants(stored: list[VisitInput], rows: dict) -> None:  # type: ignore[type-arg]
    through = Visit.participant_members.through
    links = [
        through(visit_id=rows[i.client_uuid][0], member_id=m)
        for i in stored
        for m in i.participant_members
    ]
    if links:
        through.objects.bulk_create(links)


def _store_photos(stored: list[VisitInput], rows: dict) -> None:  # type: ignore[type-arg]
    photos = []
    for item in stored:
        for n, p in enumerate(item.photos):
            ext = "jpg" if p.content_type == "image/jpeg" else "png"
            photo = VisitPhoto(
                visit_id=rows[item.client_uuid][0],
                content_type=p.content_type,
                size=len(p.data),
                sha256=p.sha256,
                exif_point=Point(*p.exif_point, srid=4326) if p.exif_point else None,
                exif_time=p.exif_time,
            )
            photo.image.save(f"{item.client_uuid}-{n}.{ext}", ContentFile(p.data), save=False)
            photos.append(photo)
    if photos:
        VisitPhoto.objects.bulk_create(photos)


def _repeat(item: VisitInput, known_hash: str, known_id: int | None) -> ItemResult:
    if known_hash == item.content_hash:
        return ItemResult(item.index, "duplicate", str(item.client_uuid), id=known_id)
    return ItemResult(
        item.index,
        "conflict",
        str(item.client_uuid),
        id=known_id,
        errors={
            "client_uuid": "already stored with different content; not overwritten "
            "(send it again with a new UUID if it is another visit)"
        },
    )


def open_cases_for_findings(member, visit_id: int, item: VisitInput) -> list[int]:  # type: ignore[no-untyped-def]
    """Open a case (上报) for each finding with ``open_case``, in the visit's own savepoint:
    the case is routed along the chain like any report, and the finding keeps its number
    (``item.findings`` gets ``case_id`` and ``case_number``).

    Such a finding's ``category`` must be a case category code (``/api/v1/categories/``);
    otherwise, or if the report is refused, the item is rejected with the reason and
    nothing of it is stored (the other items of the batch are not touched)."""
    from gridsvc.cases.models import Category
    from gridsvc.cases.services import CaseError, report_case

    wanted = [(i, f) for i, f in enumerate(item.findings) if f.get("open_case")]
    if not wanted:
        return []
    household = Household.objects.get(pk=item.household)
    categories = {
        c.code: c
        for c in Category.objects.filter(code__in=[f["category"] for _, f in wanted], active=True)
    }
    case_ids = []
    for i, f in wanted:
        category = categories.get(f["category"])
        if category is None:
            raise ItemError(
                {
                    "findings": f"item {i}: {f['category']!r} is not a case category "
                    "(see /api/v1/categories/) — needed to open a case"
                }
            )
        description = f.get("description") or ""
        try:
            report = report_case(
                reporter=member,
                category=category,
                title=(description.splitlines()[0][:60] if description else category.name),
                description=description,
                household=household,
                source="visit",
                external_ref=str(item.client_uuid),
            )
        except CaseError as exc:
            raise ItemError({"findings": f"item {i}: {exc.message}"}) from None
        f["case_id"] = report.case.pk
        f["case_number"] = report.case.number
        case_ids.append(report.case.pk)
    return case_ids


def day_of(item_time: datetime) -> date:
    return timezone.localdate(item_time)
