"""Recording visits from the phone (走访记录上传), one at a time or in offline batches.

Each item ends as exactly one of:

- ``accepted``: stored (a new row), its matching open task(s) closed, cases opened for
  findings with ``open_case``;
- ``duplicate``: the same client UUID with the same content is already stored (no new row);
- ``conflict``: the same client UUID with different content is stored; reported, never
  overwritten;
- ``rejected``: invalid; ``errors`` names the field(s).

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

A batch runs in one transaction with a savepoint per item, so one bad item never loses the
others. Households are checked against the member's territory in one query per batch, and
the distances to the households' buildings are computed by PostGIS in one statement
(``ST_Distance`` on geography, to the footprint: 0 inside it).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import io
import json
import uuid
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from django.conf import settings
from django.contrib.gis.geos import Point
from django.core.files.base import ContentFile
from django.db import IntegrityError, connection, transaction
from django.db.models import Q
from django.utils import timezone
from django.utils.dateparse import parse_datetime

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
ITEM_FIELDS = {
    "client_uuid",
    "household",
    "resident",
    "task",
    "rule",
    "client_time",
    "lat",
    "lon",
    "accuracy_m",
    "crs",
    "purpose",
    "notes",
    "findings",
    "participant_members",
    "participants_text",
    "photos",
}


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


# ---------------------------------------------------------------- parsing
def _int(raw: Any, name: str, required: bool = False) -> int | None:
    if raw is None or raw == "":
        if required:
            raise ItemError({name: "this field is required"})
        return None
    if isinstance(raw, bool):
        raise ItemError({name: "must be an integer id"})
    try:
        return int(raw)
    except (TypeError, ValueError):
        raise ItemError({name: "must be an integer id"}) from None


def _float(raw: Any, name: str, lo: float, hi: float) -> float | None:
    if raw is None or raw == "":
        return None
    if isinstance(raw, bool):
        raise ItemError({name: "must be a number"})
    try:
        value = float(raw)
    except (TypeError, ValueError):
        raise ItemError({name: "must be a number"}) from None
    if not (lo <= value <= hi):  # also rejects NaN
        raise ItemError({name: f"must be between {lo} and {hi}"})
    return value


def _text(raw: Any, name: str, max_len: int) -> str:
    if raw is None:
        return ""
    if not isinstance(raw, str):
        raise ItemError({name: "must be a string"})
    if len(raw) > max_len:
        raise ItemError({name: f"at most {max_len} characters"})
    return raw


def _maybe_json(raw: Any, name: str = "non_field_errors") -> Any:
    """Multipart forms carry lists as JSON strings. Same limits as a JSON body (api/parsers):
    too deeply nested is not JSON here, and no NUL character in it (PostgreSQL refuses it)."""
    if isinstance(raw, str) and raw[:1] in "[{":
        try:
            value = json.loads(raw)
        except (ValueError, RecursionError):
            return raw
        if _has_nul(value):
            raise ItemError({name: "must not contain the NUL character (\\u0000)"})
        return value
    return raw


def _has_nul(value: Any) -> bool:
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


def _photos(raw: Any, files: list | None) -> list[PhotoInput]:
    out: list[PhotoInput] = []
    raw = _maybe_json(raw, "photos")
    if raw not in (None, ""):
        if not isinstance(raw, list):
            raise ItemError({"photos": "must be a list of {data: base64}"})
        for p in raw:
            encoded = p.get("data") if isinstance(p, dict) else p
            if not isinstance(encoded, str):
                raise ItemError({"photos": "each photo needs base64 'data'"})
            if "," in encoded[:64] and encoded.startswith("data:"):
                encoded = encoded.split(",", 1)[1]
            if len(encoded) > MAX_PHOTO_BYTES * 4 // 3 + 8:
                raise ItemError({"photos": f"a photo is at most {MAX_PHOTO_BYTES // 2**20} MB"})
            try:
                data = base64.b64decode(encoded, validate=True)
            except (binascii.Error, ValueError):
                raise ItemError({"photos": "photo data is not valid base64"}) from None
            out.append(parse_photo(data))
    for f in files or []:
        if f.size > MAX_PHOTO_BYTES:
            raise ItemError({"photos": f"a photo is at most {MAX_PHOTO_BYTES // 2**20} MB"})
        out.append(parse_photo(f.read()))
    if len(out) > MAX_PHOTOS:
        raise ItemError({"photos": f"at most {MAX_PHOTOS} photos"})
    return out


def _findings(raw: Any) -> list[dict[str, Any]]:
    raw = _maybe_json(raw, "findings")
    if raw in (None, ""):
        return []
    if not isinstance(raw, list):
        raise ItemError({"findings": "must be a list of {category, description, open_case}"})
    if len(raw) > MAX_FINDINGS:
        raise ItemError({"findings": f"at most {MAX_FINDINGS} findings"})
    out = []
    for i, f in enumerate(raw):
        if not isinstance(f, dict):
            raise ItemError({"findings": f"item {i} must be an object"})
        category = f.get("category")
        if not isinstance(category, str) or not category.strip() or len(category) > 64:
            raise ItemError({"findings": f"item {i}: category is required (≤ 64 characters)"})
        desc = f.get("description", "")
        if not isinstance(desc, str) or len(desc) > 2000:
            raise ItemError({"findings": f"item {i}: description must be text ≤ 2000"})
        open_case = f.get("open_case", False)
        if not isinstance(open_case, bool):
            raise ItemError({"findings": f"item {i}: open_case must be true or false"})
        out.append({"category": category.strip(), "description": desc, "open_case": open_case})
    return out


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


def parse_item(raw: Any, index: int, now: datetime, files: list | None = None) -> VisitInput:
    """Validate one submitted visit; raise :class:`ItemError` naming the field. The time is
    not judged here (see :func:`judge_time`); ``now`` is kept for callers."""
    if not isinstance(raw, dict):
        raise ItemError({"non_field_errors": "each visit must be a JSON object"})
    unknown = set(raw) - ITEM_FIELDS
    if unknown:
        raise ItemError({sorted(unknown)[0]: "unknown field"})
    try:
        cu = uuid.UUID(str(raw.get("client_uuid", "")))
    except ValueError:
        raise ItemError({"client_uuid": "a UUID is required"}) from None
    client_time_raw = raw.get("client_time")
    ct = parse_datetime(client_time_raw) if isinstance(client_time_raw, str) else None
    if ct is None:
        raise ItemError({"client_time": "an ISO 8601 date-time is required"})
    if timezone.is_naive(ct):
        ct = timezone.make_aware(ct)
    lat = _float(raw.get("lat"), "lat", -90, 90)
    lon = _float(raw.get("lon"), "lon", -180, 180)
    if (lat is None) != (lon is None):
        raise ItemError({"lat" if lat is None else "lon": "give both lat and lon, or neither"})
    from geo.crs import UnsupportedCRS, normalize_crs

    try:  # the API's one vocabulary (EPSG:4326, gcj-02, bd09ll … too)
        crs = normalize_crs(str(raw.get("crs") or "wgs84"))
    except UnsupportedCRS:
        raise ItemError({"crs": f"one of {', '.join(CRS_CHOICES)}"}) from None
    members = _maybe_json(raw.get("participant_members"), "participant_members") or []
    if not isinstance(members, list):
        raise ItemError({"participant_members": "must be a list of member ids"})
    item = VisitInput(
        index=index,
        client_uuid=cu,
        household=_int(raw.get("household"), "household", required=True),  # type: ignore[arg-type]
        client_time=ct,
        resident=_int(raw.get("resident"), "resident"),
        task=_int(raw.get("task"), "task"),
        rule=None,
        lon=lon,
        lat=lat,
        crs=crs,
        accuracy_m=_float(raw.get("accuracy_m"), "accuracy_m", 0, 100_000),
        purpose=_text(raw.get("purpose"), "purpose", 200),
        notes=_text(raw.get("notes"), "notes", 5000),
        findings=_findings(raw.get("findings")),
        participant_members=sorted({_int(m, "participant_members") or 0 for m in members}),
        participants_text=_text(raw.get("participants_text"), "participants_text", 300),
        photos=_photos(raw.get("photos"), files),
    )
    rule = raw.get("rule")
    if rule not in (None, ""):
        if isinstance(rule, str) and not rule.isdigit():
            rid = VisitRule.objects.filter(code=rule).values_list("id", flat=True).first()
            if rid is None:
                raise ItemError({"rule": "unknown rule"})
            item.rule = rid
        else:
            item.rule = _int(rule, "rule")
    if lon is not None:
        item.wgs84 = convert_to_wgs84(lon, lat, crs)  # type: ignore[arg-type]
        item.location_source = "gps"
    else:
        exif = next((p.exif_point for p in item.photos if p.exif_point), None)
        if exif:
            item.wgs84, item.location_source = exif, "photo_exif"
    return item


# ---------------------------------------------------------------- recording
def _distances(items: list[VisitInput]) -> dict[int, float]:
    """index → metres from the point to the household's building footprint (one statement)."""
    located = [i for i in items if i.wgs84 is not None]
    if not located:
        return {}
    sql = f"""
        SELECT t.i, ST_Distance(
            ST_SetSRID(ST_MakePoint(t.lon, t.lat), 4326)::geography, b.footprint::geography)
        FROM unnest(%s::int[], %s::float8[], %s::float8[], %s::bigint[]) AS t(i, lon, lat, hh)
        JOIN {Household._meta.db_table} h ON h.id = t.hh
        JOIN {Unit._meta.db_table} u ON u.id = h.unit_id
        JOIN {Building._meta.db_table} b ON b.id = u.building_id
    """
    with connection.cursor() as cur:
        cur.execute(
            sql,
            [
                [i.index for i in located],
                [i.wgs84[0] for i in located],  # type: ignore[index]
                [i.wgs84[1] for i in located],  # type: ignore[index]
                [i.household for i in located],
            ],
        )
        return {i: float(d) for i, d in cur.fetchall()}


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


def _closable_on(task: VisitTask, day: date) -> bool:
    """Whether a visit on ``day`` counts for ``task``: an open or overdue task always (the
    visit was made for it); a missed one if the visit was made in time (by the period's last
    day + the rule's grace), i.e. it was marked missed while the phone was offline."""
    if task.status in (VisitTask.Status.OPEN, VisitTask.Status.OVERDUE):
        return True
    if task.status == VisitTask.Status.MISSED:
        return day <= task.period_end + timedelta(days=task.rule.grace_days)
    return False


def _task_link(member, item: VisitInput, task: VisitTask) -> str:  # type: ignore[no-untyped-def]
    """What happens to the link to the task the visit names (never a rejection)."""
    if not _closable_on(task, timezone.localdate(item.time or item.client_time)):
        return TASK_CLOSED
    if task.assigned_member_id not in (None, member.id):
        return TASK_REASSIGNED
    return LINKED


def _matching_tasks(item: VisitInput, open_tasks: list[VisitTask]) -> list[VisitTask]:
    day = timezone.localdate(item.time or item.client_time)
    if item.task is not None:
        return [t for t in open_tasks if t.id == item.task and _closable_on(t, day)]
    candidates = [
        t for t in open_tasks if t.period_start <= day <= t.period_end and _closable_on(t, day)
    ]
    if item.rule is not None:
        candidates = [t for t in candidates if t.rule_id == item.rule]
    return candidates


def record_visits(
    member,
    raw_items: list[Any],
    scope,
    files: list | None = None,
    clock: RequestClock | None = None,
) -> list[ItemResult]:  # type: ignore[no-untyped-def]
    """Validate and store visits; one result per item, in order. See the module docstring.

    ``clock``: the upload's receive time and the phone's clock (default: the current
    request's, set by :class:`gridsvc.sync.middleware.ServerTimeMiddleware`)."""
    clock = clock or current_clock()
    now = clock.received_at
    results: dict[int, ItemResult] = {}
    parsed: list[VisitInput] = []
    for i, raw in enumerate(raw_items):
        try:
            item = parse_item(raw, i, now, files if i == 0 else None)
        except ItemError as exc:
            cu = raw.get("client_uuid") if isinstance(raw, dict) else None
            results[i] = ItemResult(i, "rejected", str(cu) if cu else None, errors=exc.errors)
            continue
        item.content_hash = hashlib.sha256(
            json.dumps(item.canonical(member.id), sort_keys=True, ensure_ascii=False).encode()
        ).hexdigest()
        judge_time(item, clock)
        parsed.append(item)

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

    # territory and references (one query each); the territory is judged now and, for the
    # rest, when each visit was made (a visit from before a hand-over counts)
    hh_ids = {i.household for i in fresh}
    visible = set(
        scope.filter(Household.objects.filter(id__in=hh_ids)).values_list("id", flat=True)
    )
    held_then = households_held_at(member, [i for i in fresh if i.household not in visible], now)
    allowed = [i for i in fresh if i.household in visible or i.index in held_then]
    allowed_hh = {i.household for i in allowed}
    res_home = dict(
        Resident.objects.filter(id__in={i.resident for i in fresh if i.resident}).values_list(
            "id", "household_id"
        )
    )
    from django.contrib.auth import get_user_model

    from gridsvc.chain.scope import scope_for

    # a participant of a joint visit holds a position over the visited household now or did
    # when the visit was made (its chain); anyone else reads like an unknown id (issue 15
    # item 7: ids through the scope)
    wanted = {m for i in fresh for m in i.participant_members}
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

    rule_ids = set(VisitRule.objects.values_list("id", flat=True))
    open_tasks = list(
        VisitTask.objects.filter(
            household__in=allowed_hh,
            status__in=[VisitTask.Status.OPEN, VisitTask.Status.OVERDUE, VisitTask.Status.MISSED],
        ).select_related("rule")
    )
    tasks_of: dict[int, list[VisitTask]] = {}
    for t in open_tasks:
        tasks_of.setdefault(t.household_id, []).append(t)
    explicit = {i.task for i in fresh if i.task}
    named = {t.id: t for t in VisitTask.objects.filter(id__in=explicit).select_related("rule")}

    valid: list[VisitInput] = []
    for item in fresh:
        err, code = None, None
        if not (item.household in visible or item.index in held_then):
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
                item.task_link = _task_link(member, item, task)
                if (
                    item.task_link != TASK_CLOSED
                    and not item.time_flag
                    and timezone.localdate(item.time) < (task.period_start - TASK_WINDOW_SLACK)
                ):
                    item.time_flag = VisitClock.Flag.BEFORE_TASK_WINDOW
        if err:
            results[item.index] = ItemResult(
                item.index, "rejected", str(item.client_uuid), errors=err, code=code
            )
        else:
            valid.append(item)

    distances = _distances(valid)
    threshold = far_off_threshold_m()
    closed_by: dict[int, int] = {}  # task id → visit id (within this batch)
    with transaction.atomic():
        stored_items: list[VisitInput] = []
        for item in valid:
            try:
                with transaction.atomic():
                    results[item.index] = _store(
                        member, item, distances.get(item.index), threshold, tasks_of, closed_by
                    )
                stored_items.append(item)
            except ItemError as exc:
                results[item.index] = ItemResult(
                    item.index, "rejected", str(item.client_uuid), errors=exc.errors
                )
            except IntegrityError:
                again = (
                    Visit.objects.filter(client_uuid=item.client_uuid)
                    .values_list("content_hash", "id")
                    .first()
                )
                if again:
                    results[item.index] = _repeat(item, again[0], again[1])
                else:
                    results[item.index] = ItemResult(
                        item.index,
                        "rejected",
                        str(item.client_uuid),
                        errors={"non_field_errors": "could not be stored (conflicting data)"},
                        code=CODE_NOT_STORED,
                    )
        VisitClock.objects.bulk_create(
            VisitClock(
                visit_id=results[item.index].id,
                sent_time=item.client_time,
                device_time=clock.device_time,
                received_at=clock.received_at,
                offset_ms=clock.offset_ms,
                corrected=item.time_corrected,
                flag=item.time_flag,
            )
            for item in stored_items
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
    return [results[i] for i in range(len(raw_items))]


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


def _store(
    member,  # type: ignore[no-untyped-def]
    item: VisitInput,
    distance: float | None,
    threshold: float,
    tasks_of: dict[int, list[VisitTask]],
    closed_by: dict[int, int],
) -> ItemResult:
    point = Point(*item.wgs84, srid=4326) if item.wgs84 else None
    visit = Visit.objects.create(
        client_uuid=item.client_uuid,
        content_hash=item.content_hash,
        member=member,
        household_id=item.household,
        resident_id=item.resident,
        client_time=item.time or item.client_time,
        location=point,
        location_source=item.location_source,
        input_crs=item.crs,
        accuracy_m=item.accuracy_m,
        accuracy_grade=_judge(item.accuracy_m) if item.location_source == "gps" else "",
        distance_m=None if distance is None else round(distance, 2),
        far_off=distance is not None and distance > threshold,
        purpose=item.purpose,
        notes=item.notes,
        findings=item.findings,
        participants_text=item.participants_text,
    )
    if item.participant_members:
        visit.participant_members.set(item.participant_members)
    for n, p in enumerate(item.photos):
        ext = "jpg" if p.content_type == "image/jpeg" else "png"
        photo = VisitPhoto(
            visit=visit,
            content_type=p.content_type,
            size=len(p.data),
            sha256=p.sha256,
            exif_point=Point(*p.exif_point, srid=4326) if p.exif_point else None,
            exif_time=p.exif_time,
        )
        photo.image.save(f"{visit.client_uuid}-{n}.{ext}", ContentFile(p.data), save=False)
        photo.save()
    # close the matching open task(s); a task closed meanwhile only loses the link
    closing = [
        t for t in _matching_tasks(item, tasks_of.get(item.household, [])) if t.id not in closed_by
    ]
    if item.task is None:
        item.task_link = LINKED if closing else NO_TASK
    elif not closing:
        item.task_link = TASK_CLOSED
    now = timezone.now()
    if closing:
        closed = VisitTask.objects.filter(
            id__in=[t.id for t in closing],
            status__in=[VisitTask.Status.OPEN, VisitTask.Status.OVERDUE, VisitTask.Status.MISSED],
        ).update(status=VisitTask.Status.DONE, done_by=visit, updated_at=now)
        if not closed:  # closed by a concurrent upload
            closing = []
            item.task_link = TASK_CLOSED if item.task is not None else NO_TASK
        for t in closing:
            closed_by[t.id] = visit.id
            t.status = VisitTask.Status.DONE
        if closing:
            visit.task_id = closing[0].id
    case_ids = open_cases_for_findings(member, visit, item)
    if closing or case_ids:
        visit.case_ids = case_ids
        Visit.objects.filter(pk=visit.pk).update(task_id=visit.task_id, case_ids=case_ids)
    return ItemResult(
        item.index,
        "accepted",
        str(item.client_uuid),
        id=visit.id,
        far_off=visit.far_off,
        distance_m=visit.distance_m,
        closed_tasks=[t.id for t in closing],
        case_ids=case_ids,
        visit=visit,
        client_time=visit.client_time,
        time_corrected=item.time_corrected,
        time_flag=item.time_flag,
        task_link=item.task_link,
    )


def open_cases_for_findings(member, visit: Visit, item: VisitInput) -> list[int]:  # type: ignore[no-untyped-def]
    """Open a case (上报) for each finding with ``open_case``, in the visit's own savepoint:
    the case is routed along the chain like any report, and the finding keeps its number.

    Such a finding's ``category`` must be a case category code (``/api/v1/categories/``);
    otherwise, or if the report is refused, the item is rejected with the reason and
    nothing of it is stored (the other items of the batch are not touched)."""
    from gridsvc.cases.models import Category
    from gridsvc.cases.services import CaseError, report_case

    wanted = [(i, f) for i, f in enumerate(visit.findings) if f.get("open_case")]
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
                external_ref=str(visit.client_uuid),
            )
        except CaseError as exc:
            raise ItemError({"findings": f"item {i}: {exc.message}"}) from None
        f["case_id"] = report.case.pk
        f["case_number"] = report.case.number
        case_ids.append(report.case.pk)
    Visit.objects.filter(pk=visit.pk).update(findings=visit.findings)
    return case_ids


def day_of(item_time: datetime) -> date:
    return timezone.localdate(item_time)
