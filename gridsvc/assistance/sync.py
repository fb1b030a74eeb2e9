"""The phone and people's services (issue 21 item 1): a change feed of the applications and
migrants in the member's grids, and an offline batch of what a grid member records on a visit
(申请 started from a visit, a migrant's arrival or departure).

Kept apart from the main sync feed (:mod:`gridsvc.visits.sync`) like the community's
(:func:`gridsvc.community.services.changes`): the same signed cursors (one per feed and
member), rows by ``(updated_at, id)``. Only the staff part of the member's scope
(:func:`gridsvc.chain.visibility.staff_scope`) is read: neighbours' roles (楼长, 单元长, 物业,
业委会) get nothing, a grid member who is also a building head elsewhere gets only their
grids' rows. Income, amounts and the home contact's phone are always masked in the feed (a
phone keeps no clear sensitive value; clear values need an unmask grant on the web API).

**Removals** use the main feed's scheme (docs/sync.md, *Territory changes*): the cursor names
a :class:`~gridsvc.chain.models.TerritorySnapshot` of what the phone holds — here the
buildings of the staff part of the member's territory (辖区快照, its own data shape marked
``"feed": "assistance"``). When the member's territory now differs (a hand-over, a post
left or new, a building moved to another grid, a tier that no longer allows the data), the
next call runs a *territory job* first: ``purge`` lists the applications and migrants the
phone held and may no longer hold, then what is newly in the territory is sent, then the
ordinary streams go on. A member left without a staff post gets that purge (200) once, and
403 afterwards.

Rows are read as plain column values and written without model instances
(:func:`application_payloads`, :func:`migrant_payloads`): a first sync of a street is a few
pages of eight queries each.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Callable
from datetime import date, datetime
from typing import TYPE_CHECKING, Any

from django.db.models import Model, Q, QuerySet
from django.urls import reverse
from django.utils import timezone

from gridsvc.chain.models import TerritorySnapshot
from gridsvc.chain.scope import Scope, scope_for
from gridsvc.chain.visibility import MASK, Tier, staff_scope, tier_for
from gridsvc.sync.cursor import BadCursor, decode_cursor, encode_cursor, keyset_mark, rows_after
from gridsvc.territory.codes import mask_phone
from gridsvc.territory.models import Building, Household, Resident
from gridsvc.territory.textmask import amounts_in_text, mask_in_text, phone_in_text

from . import migrants, services
from .models import Application, ApplicationDocument, ApplicationEvent, Kind, Migrant, Status

if TYPE_CHECKING:
    from gridsvc.visits.models import Visit

FEED_NAME = "assistance"
_STAFF_ONLY = "people's services are for grid, community and street staff"
BATCH_KINDS = ("application", "arrival", "departure")
#: income and amounts: always ``**`` in the feed (never clear on a phone)
SENSITIVE_FIELDS = ("monthly_income", "amount")
#: an application's free text (its reasons and notes) where its masked amounts are masked too
APPLICATION_TEXTS = ("reason", "review_opinion", "decision_reason")
#: a migrant's free text, where a phone typed in it is masked like ``home_contact_phone``
MIGRANT_TEXTS = (
    "departed_to",
    "home_contact",
    "employer",
    "business_licence",
    "children_needs",
    "training",
)


def masked_application(data: dict[str, Any], income: Any, amount: Any) -> dict[str, Any]:
    """An application as written with its income and amount masked (``data``, in place):
    those values typed in its reasons or its events' notes ("批准,每月620元") are masked there
    too, and so are phones and ID numbers there and in the names of the documents seen and
    attached (a mask is judged over all fields shown together; a document's file itself needs
    an unmask grant)."""
    values = (income, amount)

    def scrub(text: str) -> str:
        return mask_in_text(amounts_in_text(text, values, MASK))

    for key in APPLICATION_TEXTS:
        if data.get(key):
            data[key] = scrub(data[key])
    for event in data.get("events") or []:
        if event.get("note"):
            event["note"] = scrub(event["note"])
    if data.get("documents"):
        data["documents"] = [mask_in_text(str(d)) for d in data["documents"]]
    for doc in data.get("attachments") or []:  # a file's name typed as "身份证 6201…"
        if doc.get("name"):
            doc["name"] = mask_in_text(doc["name"])
    return data


def masked_migrant(data: dict[str, Any], phone: str) -> dict[str, Any]:
    """A migrant as written with ``home_contact_phone`` masked (``data``, in place): that phone,
    any mobile phone and any ID number typed in its free text are masked there too."""
    for key in MIGRANT_TEXTS:
        if data.get(key):
            data[key] = phone_in_text(data[key], phone)
    return data


#: a migrant's details besides arrival and departure (as the migrants API shows them)
MIGRANT_DETAILS = (
    "permit",
    "permit_expires",
    "home_contact",
    "home_contact_phone",
    "work",
    "employer",
    "business_licence",
    "children_needs",
    "training",
)


def _staff_households(member: Any) -> QuerySet[Household]:
    if tier_for(member) < Tier.STAFF:
        return Household.objects.none()
    return staff_scope(scope_for(member)).filter(Household.objects.all())


def feed_applications(member: Any, scope: Scope | None = None) -> QuerySet[Application]:
    """Applications the member's phone holds: those of households in the staff part of their
    scope (``scope``: the member's, when already at hand)."""
    return services.visible_applications(scope or scope_for(member), member)


def feed_migrants(member: Any, scope: Scope | None = None) -> QuerySet[Migrant]:
    """Migrants living (or who lived) in the staff part of the member's scope."""
    qs = Migrant.objects.select_related("resident")
    if tier_for(member) < Tier.STAFF:
        return qs.none()
    return staff_scope(scope or scope_for(member)).filter(qs)


FEED_STREAMS = {"applications": feed_applications, "migrants": feed_migrants}
#: each stream's path from its row to the household (for what a snapshot held)
_HOUSEHOLD_PATH = {"applications": "household__", "migrants": "resident__household__"}


# ---------------------------------------------------------------- payloads (plain rows)
def _dt(value: datetime | None) -> str | None:
    """A time as the API writes it (DRF: the server's zone, ISO 8601)."""
    return None if value is None else timezone.localtime(value).isoformat()


def _d(value: date | None) -> str | None:
    return None if value is None else value.isoformat()


#: an application's keys as the phone's feed and the API write them, in order — the one list
#: (``api.assistance.AssistanceApplicationSerializer``'s fields; :func:`application_payloads`)
APPLICATION_FIELDS = (
    "id",
    "client_uuid",
    "household",
    "applicant",
    "visit",
    "kind",
    "kind_name",
    "status",
    "status_name",
    "reason",
    "members_count",
    "monthly_income",
    "documents",
    "recommended",
    "review_opinion",
    "decision_reason",
    "amount",
    "start_date",
    "end_date",
    "recheck_due",
    "due_at",
    "created_by",
    "created_at",
    "updated_at",
    "masked",
    "events",
    "attachments",
)
#: the keys made from other columns or rows (names, the mask list, events, documents)
_APPLICATION_MADE = ("kind_name", "status_name", "masked", "events", "attachments")
_APPLICATION_FOREIGN = ("household", "applicant", "visit", "created_by")
#: the columns :func:`application_payloads` reads (``.values(*APPLICATION_COLUMNS)``)
APPLICATION_COLUMNS = tuple(
    f"{key}_id" if key in _APPLICATION_FOREIGN else key
    for key in APPLICATION_FIELDS
    if key not in _APPLICATION_MADE
)
_KIND_NAMES = dict(Kind.choices)
_STATUS_NAMES = dict(Status.choices)


def _doc_url(app_id: int, doc_id: int) -> str:
    return reverse("assistance-document-file", kwargs={"app_id": app_id, "pk": doc_id})


def application_payloads(
    rows: list[dict[str, Any]], absolute: Callable[[str], str] = str
) -> list[dict[str, Any]]:
    """The feed's form of applications read as ``.values(*APPLICATION_COLUMNS)``, with their
    events and documents' metadata (two queries for the page), income and amounts masked —
    the same keys and values as ``api.assistance.AssistanceApplicationSerializer`` writes
    for the phone. ``absolute`` makes a document's ``url`` absolute (the request's host)."""
    ids = [r["id"] for r in rows]
    events: dict[int, list[dict[str, Any]]] = {i: [] for i in ids}
    docs: dict[int, list[dict[str, Any]]] = {i: [] for i in ids}
    if ids:
        for e in (
            ApplicationEvent.objects.filter(application_id__in=ids)
            .order_by("at", "id")
            .values(
                "id",
                "application_id",
                "action",
                "from_status",
                "to_status",
                "actor_id",
                "actor__display_name",
                "at",
                "note",
            )
        ):
            events[e["application_id"]].append(
                {
                    "id": e["id"],
                    "action": e["action"],
                    "from_status": e["from_status"],
                    "to_status": e["to_status"],
                    "actor": e["actor_id"],
                    "actor_name": e["actor__display_name"],
                    "at": _dt(e["at"]),
                    "note": e["note"],
                }
            )
        for d in (
            ApplicationDocument.objects.filter(application_id__in=ids)
            .order_by("created_at", "id")
            .values(
                "id",
                "application_id",
                "name",
                "content_type",
                "size",
                "uploaded_by_id",
                "created_at",
            )
        ):
            docs[d["application_id"]].append(
                {
                    "id": d["id"],
                    "name": d["name"],
                    "content_type": d["content_type"],
                    "size": d["size"],
                    "uploaded_by": d["uploaded_by_id"],
                    "created_at": _dt(d["created_at"]),
                    "url": absolute(_doc_url(d["application_id"], d["id"])),
                }
            )
    out = []
    for r in rows:
        row = {
            "id": r["id"],
            "client_uuid": None if r["client_uuid"] is None else str(r["client_uuid"]),
            "household": r["household_id"],
            "applicant": r["applicant_id"],
            "visit": r["visit_id"],
            "kind": r["kind"],
            "kind_name": _KIND_NAMES.get(r["kind"], r["kind"]),
            "status": r["status"],
            "status_name": _STATUS_NAMES.get(r["status"], r["status"]),
            "reason": r["reason"],
            "members_count": r["members_count"],
            "monthly_income": None if r["monthly_income"] is None else MASK,
            "documents": r["documents"],
            "recommended": r["recommended"],
            "review_opinion": r["review_opinion"],
            "decision_reason": r["decision_reason"],
            "amount": None if r["amount"] is None else MASK,
            "start_date": _d(r["start_date"]),
            "end_date": _d(r["end_date"]),
            "recheck_due": _d(r["recheck_due"]),
            "due_at": _dt(r["due_at"]),
            "created_by": r["created_by_id"],
            "created_at": _dt(r["created_at"]),
            "updated_at": _dt(r["updated_at"]),
            "masked": list(SENSITIVE_FIELDS),
            "events": events[r["id"]],
            "attachments": docs[r["id"]],
        }
        out.append(masked_application(row, r["monthly_income"], r["amount"]))
    return out


#: a migrant's keys as the phone's feed and the API write them, in order — the one list
#: (``api.assistance.MigrantSerializer``'s fields; :func:`migrant_payloads`)
MIGRANT_FIELDS = (
    "id",
    "resident",
    "resident_name",
    "household",
    "arrived_on",
    "departed_on",
    "departed_to",
    *MIGRANT_DETAILS,
    "recorded_by",
    "created_at",
    "updated_at",
)
_MIGRANT_SOURCES = {
    "resident": "resident_id",
    "resident_name": "resident__name",
    "household": "resident__household_id",
    "recorded_by": "recorded_by_id",
}
#: the columns :func:`migrant_payloads` reads (``.values(*MIGRANT_COLUMNS)``)
MIGRANT_COLUMNS = tuple(_MIGRANT_SOURCES.get(key, key) for key in MIGRANT_FIELDS)


def migrant_payloads(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The feed's form of migrants read as ``.values(*MIGRANT_COLUMNS)``: the home contact's
    phone masked (as ``api.assistance.MigrantSerializer`` writes it without a grant)."""
    out = []
    for r in rows:
        phone = r["home_contact_phone"]
        row = {
            "id": r["id"],
            "resident": r["resident_id"],
            "resident_name": r["resident__name"],
            "household": r["resident__household_id"],
            "arrived_on": _d(r["arrived_on"]),
            "departed_on": _d(r["departed_on"]),
            "departed_to": r["departed_to"],
            "permit": r["permit"],
            "permit_expires": _d(r["permit_expires"]),
            "home_contact": r["home_contact"],
            "home_contact_phone": mask_phone(phone) if phone else "",
            "work": r["work"],
            "employer": r["employer"],
            "business_licence": r["business_licence"],
            "children_needs": r["children_needs"],
            "training": r["training"],
            "recorded_by": r["recorded_by_id"],
            "created_at": _dt(r["created_at"]),
            "updated_at": _dt(r["updated_at"]),
        }
        out.append(masked_migrant(row, phone))
    return out


_COLUMNS = {"applications": APPLICATION_COLUMNS, "migrants": MIGRANT_COLUMNS}


def _payloads(
    key: str, rows: list[dict[str, Any]], absolute: Callable[[str], str]
) -> list[dict[str, Any]]:
    if key == "applications":
        return application_payloads(rows, absolute)
    return migrant_payloads(rows)


# ---------------------------------------------------------------- territory (removals)
def territory_data(member: Any, scope: Scope | None = None) -> dict[str, Any]:
    """What decides which applications and migrants ``member``'s phone holds: the buildings
    of the staff part of their territory (``all`` for a superuser; none below the STAFF
    tier). A building moved to another grid leaves the old grid member's list and enters the
    new one's."""
    if tier_for(member) < Tier.STAFF:
        return {"feed": FEED_NAME, "buildings": []}
    scope = staff_scope(scope or scope_for(member))
    if scope.everything:
        return {"feed": FEED_NAME, "all": True}
    ids = Building.objects.filter(scope.building_q()).order_by("id").values_list("id", flat=True)
    return {"feed": FEED_NAME, "buildings": list(ids)}


def _digest(data: dict[str, Any]) -> str:
    raw = json.dumps(data, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(raw).hexdigest()


def _holds_anything(data: dict[str, Any]) -> bool:
    return bool(data.get("all") or data.get("buildings"))


def _held_q(data: dict[str, Any], prefix: str) -> Q:
    """Rows (their household at ``prefix``) a snapshot's territory held."""
    if data.get("all"):
        return Q()
    return Q(**{f"{prefix}unit__building__in": data.get("buildings", [])})


def _held_any_q(bases: list[dict[str, Any]], prefix: str) -> Q:
    """Rows any of ``bases`` held (a Q over their buildings together)."""
    if any(base.get("all") for base in bases):
        return Q()
    buildings = sorted({b for base in bases for b in base.get("buildings", [])})
    return Q(**{f"{prefix}unit__building__in": buildings})


def _page_ids(qs: QuerySet, job: dict[str, Any], key: str, limit: int) -> tuple[list[Any], bool]:
    """The next page (by id) of a job's part ``key``; records progress in ``job``."""
    if key in job["d"]:
        return [], False
    rows = list(qs.filter(id__gt=job["p"].get(key, 0)).order_by("id")[: limit + 1])
    if len(rows) > limit:
        rows = rows[:limit]
        job["p"][key] = rows[-1]["id"] if isinstance(rows[-1], dict) else rows[-1]
        return rows, True
    job["d"].append(key)
    return rows, False


def _run_job(
    job: dict[str, Any],
    member: Any,
    scope: Scope,
    out: dict[str, Any],
    limit: int,
    absolute: Callable[[str], str],
) -> bool:
    """One page of a territory job: purge what the phone held and may no longer hold, then
    send what is newly in the territory (everything when the job is a restart of an
    interrupted one). Returns whether the job has more."""
    bases = list(TerritorySnapshot.objects.filter(id__in=job["b"]).values_list("data", flat=True))
    if len(bases) < len(set(job["b"])):
        raise BadCursor("a territory this cursor named is gone: sync from the start (no since)")
    more = False
    for key, rows_of in FEED_STREAMS.items():
        path = _HOUSEHOLD_PATH[key]
        model = Application if key == "applications" else Migrant
        visible = rows_of(member, scope)
        gone = model.objects.filter(_held_any_q(bases, path)).exclude(id__in=visible.values("id"))
        ids, m = _page_ids(gone.values_list("id", flat=True), job, f"p{key[0]}", limit)
        out["purge"][key] += ids
        more |= m
        if len(bases) != 1:  # an interrupted job: the phone may lack any of it, send all
            fresh = visible
        elif bases[0].get("all"):  # it held everything: nothing is new
            fresh = visible.none()
        else:
            fresh = visible.exclude(_held_q(bases[0], path))
        rows, m = _page_ids(fresh.values(*_COLUMNS[key]), job, f"s{key[0]}", limit)
        out[key] += _payloads(key, rows, absolute)
        more |= m
    return more


def changes(
    member: Any,
    cursor: str | None,
    limit: int = 500,
    absolute: Callable[[str], str] = str,
) -> dict[str, Any]:
    """The phone's feed of applications and migrants: without ``cursor`` all of them, with
    it what was saved after it, ``limit`` rows per stream; after a territory change first
    the purge and what is newly in the territory (see the module docstring). Returns
    ``{cursor, has_more, territory_changed, applications, migrants, purge}``. A cursor of
    another feed or member raises ``BadCursor``; a member below the STAFF tier whose cursor
    holds nothing left to purge raises ``NotAllowed``."""
    staff = tier_for(member) >= Tier.STAFF
    try:
        state = decode_cursor(cursor, member.pk)
        if state and (state.get("feed") != FEED_NAME or "ts" not in state):
            raise BadCursor("not a cursor of the assistance feed: sync from the start (no since)")
    except BadCursor:
        if not staff:
            raise services.NotAllowed(_STAFF_ONLY) from None
        raise
    if not staff and not state:
        raise services.NotAllowed(_STAFF_ONLY)
    scope = scope_for(member)
    data = territory_data(member, scope)
    digest = _digest(data)
    held = None
    if state:
        held = (
            TerritorySnapshot.objects.filter(id=state["ts"]).values_list("digest", "data").first()
        )
        if held is None:
            raise BadCursor("a territory this cursor named is gone: sync from the start (no since)")
        if not staff and not _holds_anything(held[1]) and "k" not in state:
            raise services.NotAllowed(_STAFF_ONLY)  # told to purge before; nothing more
    if held is None or held[0] != digest:
        snap, _ = TerritorySnapshot.objects.get_or_create(digest=digest, defaults={"data": data})
        if held is not None:
            # the territory changed since the cursor (or during a running job): the phone may
            # hold rows of every territory a job has not finished with
            job = state.get("k")
            bases = [state["ts"], *(job["b"] if job else [])]
            state["k"] = {"b": list(dict.fromkeys(bases)), "p": {}, "d": []}
        state["ts"] = snap.id
    state["feed"] = FEED_NAME
    out: dict[str, Any] = {
        "applications": [],
        "migrants": [],
        "purge": {"applications": [], "migrants": []},
    }
    job = state.get("k")
    territory_changed = job is not None
    more = False
    if job is not None:
        more = _run_job(job, member, scope, out, limit, absolute)
        if not more:
            state.pop("k")
    if not more:
        for key, rows_of in FEED_STREAMS.items():
            qs = rows_after(rows_of(member, scope), state.get(key)).order_by("updated_at", "id")
            rows = list(qs.values(*_COLUMNS[key])[: limit + 1])
            if len(rows) > limit:
                more, rows = True, rows[:limit]
            if rows:
                state[key] = keyset_mark(rows[-1]["updated_at"], rows[-1]["id"])
            out[key] += _payloads(key, rows, absolute)
    for key in FEED_STREAMS:  # a page never sends a row twice
        out[key] = list({row["id"]: row for row in out[key]}.values())
    return {
        "cursor": encode_cursor(state, member.pk),
        "has_more": more,
        "territory_changed": territory_changed,
        **out,
    }


# ---------------------------------------------------------------- the offline batch
class RefNotFound(services.AssistanceError):
    """An id in the body names nothing in the staff part of the member's territory."""


def _not_found(field: str) -> services.AssistanceError:
    return RefNotFound("not found", field)


def _resident(member: Any, resident_id: Any) -> Resident:
    if resident_id is None:
        raise services.AssistanceError("name the resident", "resident")
    found = Resident.objects.filter(pk=resident_id, household__in=_staff_households(member)).first()
    if found is None:
        raise _not_found("resident")
    return found


def application_refs(
    households: QuerySet[Household], data: dict[str, Any]
) -> tuple[Household, Resident | None, Visit | None]:
    """The household, applicant and visit an application names (``household``,
    ``applicant?``, ``visit?`` or the visit's ``visit_uuid?``), looked up among
    ``households`` (the staff part of the member's territory); :class:`RefNotFound` naming
    the field otherwise. The web API's submit and the phone's batch both read them here."""
    from gridsvc.visits.models import Visit

    household = households.filter(pk=data.get("household")).first()
    if household is None:
        raise _not_found("household")
    applicant = None
    if data.get("applicant") is not None:
        applicant = Resident.objects.filter(pk=data["applicant"], household=household).first()
        if applicant is None:
            raise _not_found("applicant")
    visit = None
    if data.get("visit") is not None or data.get("visit_uuid") is not None:
        visits = Visit.objects.filter(household=household)
        if data.get("visit") is not None:
            visit = visits.filter(pk=data["visit"]).first()
            field = "visit"
        else:
            visit = visits.filter(client_uuid=data["visit_uuid"]).first()
            field = "visit_uuid"
        if visit is None:
            raise _not_found(field)
    return household, applicant, visit


def _start_application(member: Any, data: dict[str, Any], key: uuid.UUID) -> tuple[Model, bool]:
    household, applicant, visit = application_refs(_staff_households(member), data)
    made_at: datetime | None = data.get("made_at")
    if made_at is not None:
        made_at = min(made_at, timezone.now())  # a phone clock running ahead moves nothing
    out = services.submit(
        member,
        household,
        data["kind"],
        applicant=applicant,
        visit=visit,
        reason=data.get("reason", ""),
        client_uuid=key,
        now=made_at,
    )
    return out.application, out.created


def _arrival(member: Any, data: dict[str, Any], key: uuid.UUID) -> tuple[Model, bool]:
    data = dict(data)
    resident = _resident(member, data.pop("resident", None))
    arrived_on: date = data.pop("arrived_on")
    out = migrants.arrive(member, resident, arrived_on, client_uuid=key, **data)
    return out.migrant, out.created


def _departure(member: Any, data: dict[str, Any], key: uuid.UUID) -> tuple[Model, bool]:
    mine = feed_migrants(member)
    if data.get("migrant") is not None:
        migrant = mine.filter(pk=data["migrant"]).first()
        field = "migrant"
    else:
        migrant = mine.filter(resident_id=data.get("resident")).first()
        field = "resident"
    if migrant is None:
        raise _not_found(field)
    out = migrants.depart(
        member, migrant.pk, data["departed_on"], data.get("departed_to", ""), client_uuid=key
    )
    return out.migrant, out.created


def record_offline(
    member: Any, kind: str, data: dict[str, Any], client_uuid: uuid.UUID
) -> tuple[Model, bool]:
    """Store one item of an offline batch through the same rules as its single request:
    ``application`` (申请, from a visit: ``visit`` id or the visit's own ``visit_uuid``),
    ``arrival`` (来) or ``departure`` (走, by ``migrant`` or ``resident``). Ids are resolved
    in the staff part of the member's scope (a foreign one is "not found"). Idempotent by
    ``client_uuid``: returns the row and whether it was stored now."""
    if tier_for(member) < Tier.STAFF:
        raise services.NotAllowed("neighbours' roles do not handle assistance")
    if kind == "application":
        return _start_application(member, data, client_uuid)
    if kind == "arrival":
        return _arrival(member, data, client_uuid)
    if kind == "departure":
        return _departure(member, data, client_uuid)
    raise services.AssistanceError(f"one of {', '.join(BATCH_KINDS)}", "kind")
