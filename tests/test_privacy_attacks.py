"""An attacker's audit of people's services, reports, Open311 and files (session 8): who else
could each path reach? Each test is one attack, made as the attacker would make it — with a
phone's JWT (``token_client``: the API's own authentication, device revocation included), a
楼长's login, another grid's or a street office's login, or no login at all — and asserts what
the attacker must not learn.

- 民生服务 (assistance, migrants): other grids' households and people by filter, detail id,
  an id inside a request body, a phone's ``client_uuid`` or an ``Idempotency-Key`` replayed by
  someone else; a refusal for a foreign id reads exactly as one for an id that does not exist.
- A stored mask never goes stale: the database clears a resident's ID-number or phone mask
  when the encrypted value is changed around the model (raw SQL), so readers decrypt and mask.
- A mask beside a clear field: a masked phone never shows in clear in another field of the
  same record (a migrant's home contact, an Open311 request's description).
- Reports: the street tier's exact small counts and a report kept as issued (印发) are for the
  street's own territory, not for a grid the same member holds elsewhere.
- Open311: nothing of a case without a login; a reporter's phone never comes back.
- Files: an attachment or photo of another territory by id or guessed URL, and a signed-out
  (revoked) device, get nothing.
"""

from __future__ import annotations

import io
import json
import uuid
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from rest_framework.test import APIClient

from gridsvc.accounts.models import Member
from gridsvc.assistance import migrants, services
from gridsvc.assistance.models import Application, ApplicationDocument, Migrant
from gridsvc.audit.models import UnmaskGrant
from gridsvc.chain.models import Position, PositionType
from gridsvc.chain.scope import scope_for
from gridsvc.crypto import encrypt
from gridsvc.territory.codes import make_id_number, mask_id_number, mask_phone
from gridsvc.territory.models import Household, Resident, Street

pytestmark = pytest.mark.django_db
SHANGHAI = ZoneInfo("Asia/Shanghai")
APPS = "/api/v1/assistance/"
MIGRANTS = "/api/v1/migrants/"
BATCH = "/api/v1/assistance/batch/"
PDF = b"%PDF-1.4\n1 0 obj <<>> endobj\ntrailer <<>>\n%%EOF\n"


def _member(username: str) -> Member:
    return Member.objects.get(username=username)


def _hh(grid, n: int = 0) -> Household:  # type: ignore[no-untyped-def]
    return (
        Household.objects.filter(unit__building__grid=grid, residents__isnull=False)
        .distinct()
        .order_by("id")[n]
    )


def _resident(household: Household) -> Resident:
    return Resident.objects.filter(household=household).order_by("id").first()


def _grant(username: str) -> None:
    UnmaskGrant.objects.create(
        member=_member(username),
        reason="核对申请材料",
        expires_at=datetime.now(SHANGHAI) + timedelta(hours=1),
    )


def _unused_id(model) -> int:  # type: ignore[no-untyped-def]
    return (model.objects.order_by("-id").values_list("id", flat=True).first() or 0) + 1000


# ================================================================ stored masks (MaskField)
def _stored(resident_id: int) -> tuple[str | None, str | None]:
    with connection.cursor() as cur:
        cur.execute(
            "SELECT id_number_mask, phone_mask FROM territory_resident WHERE id = %s",
            [resident_id],
        )
        return cur.fetchone()


def _resident_with_numbers(grid) -> Resident:  # type: ignore[no-untyped-def]
    r = _resident(_hh(grid))
    r.id_number = make_id_number("620103", date(1971, 5, 6), 17, female=False)
    r.phone = "13912340001"
    r.birth_date = None
    r.gender = ""
    r.save()
    return r


def test_a_raw_sql_change_of_an_id_number_or_phone_leaves_no_stale_mask(demo):
    r = _resident_with_numbers(demo.grids[0])
    assert _stored(r.pk) == (mask_id_number(r.id_number), "*******0001")
    new_id = make_id_number("620102", date(1985, 1, 2), 33, female=True)
    # a repair script writes the new number around the model: the old mask must not stay
    with connection.cursor() as cur:
        cur.execute(
            "UPDATE territory_resident SET id_number = %s WHERE id = %s", [encrypt(new_id), r.pk]
        )
    id_mask, phone_mask = _stored(r.pk)
    assert id_mask is None  # readers now decrypt and mask the new number
    assert phone_mask == "*******0001"  # the phone did not change: its mask stays
    with connection.cursor() as cur:
        cur.execute(
            "UPDATE territory_resident SET phone = %s WHERE id = %s",
            [encrypt("13800009999"), r.pk],
        )
    assert _stored(r.pk) == (None, None)

    # what a phone's feed shows of the resident is the new values' masks, not the old ones
    from gridsvc.visits.sync import _residents, resident_rows

    grid1 = _member("grid1")
    row = _residents(list(resident_rows(Resident.objects.filter(pk=r.pk))), grid1, scope_for(grid1))
    assert row[0]["id_number"] == mask_id_number(new_id)
    assert row[0]["phone"] == mask_phone("13800009999")


def test_a_statement_that_writes_the_mask_with_the_value_keeps_it(demo):
    r = _resident_with_numbers(demo.grids[0])
    new_id = make_id_number("620102", date(1985, 1, 2), 33, female=True)
    # both written in one statement (as the model does): the mask written is kept …
    with connection.cursor() as cur:
        cur.execute(
            "UPDATE territory_resident SET id_number = %s, id_number_mask = %s, phone = %s "
            "WHERE id = %s",
            [encrypt(new_id), mask_id_number(new_id), encrypt("13800002222"), r.pk],
        )
    # … and only the mask not written beside its changed value is cleared
    assert _stored(r.pk) == (mask_id_number(new_id), None)
    # a later statement in the same transaction that writes no mask is judged on its own
    with connection.cursor() as cur:
        cur.execute(
            "UPDATE territory_resident SET id_number = %s WHERE id = %s",
            [encrypt(make_id_number("620102", date(1990, 3, 4), 41, female=False)), r.pk],
        )
    assert _stored(r.pk)[0] is None


def test_the_models_own_writes_keep_their_masks(demo):
    r = _resident_with_numbers(demo.grids[0])
    # save() re-encrypts an unchanged number to a new token: the mask is still the right one
    r.name = r.name + "某"
    r.save()
    assert _stored(r.pk) == (mask_id_number(r.id_number), "*******0001")
    r.phone = "13700005555"
    r.save(update_fields=["phone"])
    assert _stored(r.pk)[1] == "*******5555"
    Resident.objects.filter(pk=r.pk).update(phone="13600006666")
    assert _stored(r.pk)[1] == "*******6666"
    r.refresh_from_db()
    r.phone = "13500007777"
    Resident.objects.bulk_update([r], ["phone"])
    assert _stored(r.pk) == (mask_id_number(r.id_number), "*******7777")


# ================================================================ 民生服务: neighbours
def test_a_building_heads_phone_learns_nothing_of_peoples_services(demo, token_client):
    grid1 = _member("grid1")
    household = Household.objects.filter(unit__building__code__endswith="B001").first()
    app = services.submit(grid1, household, "dibao", reason="失业").application
    before = Application.objects.filter(household=household).count()
    migrant = migrants.record_arrival(grid1, _resident(household), date(2026, 9, 1))
    head = token_client("bh-001")  # the 楼长 of that very building
    assert head.get(APPS).json()["results"] == []
    assert head.get(f"{APPS}?household={household.pk}").json()["results"] == []
    assert head.get(f"{APPS}{app.pk}/").status_code == 404
    assert head.get(f"{APPS}{app.pk}/documents/").status_code == 404
    for path in ("figures/", "gaps/", "changes/"):
        assert head.get(f"{APPS}{path}").status_code == 403, path
    assert head.get(MIGRANTS).json()["results"] == []
    assert head.get(f"{MIGRANTS}{migrant.pk}/").status_code == 404
    assert head.get(f"{MIGRANTS}flows/").json()["present"] == 0
    body = {"household": household.pk, "kind": "temp_relief"}
    assert head.post(APPS, body, format="json").status_code == 403
    item = {"kind": "application", "client_uuid": str(uuid.uuid4()), "data": body}
    assert head.post(BATCH, {"items": [item]}, format="json").status_code == 403
    assert Application.objects.filter(household=household).count() == before


# ================================================================ 民生服务: another grid
def test_another_grids_applications_are_out_of_reach_by_every_id(
    demo, token_client, settings, tmp_path
):
    settings.MEDIA_ROOT = tmp_path
    grid2 = _member("grid2")
    theirs = _hh(demo.grids[1])
    app = services.submit(grid2, theirs, "temp_relief", reason="看病").application
    from gridsvc.assistance.documents import attach
    from gridsvc.uploads import check_upload

    doc = attach(grid2, app.pk, check_upload(PDF, "file", max_bytes=10**6), "收入证明").document
    _grant("grid1")
    grid1 = token_client("grid1")
    assert app.pk not in [a["id"] for a in grid1.get(APPS).json()["results"]]
    assert grid1.get(f"{APPS}?household={theirs.pk}").json()["results"] == []
    assert grid1.get(f"{APPS}{app.pk}/").status_code == 404
    assert grid1.get(f"{APPS}{app.pk}/documents/").status_code == 404
    # the file itself, even under an unmask grant: 404 as for a document that does not exist
    url = f"{APPS}{app.pk}/documents/{doc.pk}/file/?unmask=1"
    assert grid1.get(url).status_code == 404
    assert grid1.get(f"{APPS}{app.pk}/documents/{_unused_id(ApplicationDocument)}/file/?unmask=1").status_code == 404  # fmt: skip
    # a document of grid 2's application named under one of grid 1's
    mine = services.submit(_member("grid1"), _hh(demo.grids[0]), "temp_relief").application
    assert grid1.get(f"{APPS}{mine.pk}/documents/{doc.pk}/file/?unmask=1").status_code == 404
    # every step on it, and a document posted to it
    steps = {
        "check/": {"members_count": 1, "monthly_income": "1.00", "documents": ["户口簿"]},
        "withdraw/": {"note": "x"},
        "review/": {"recommended": True, "opinion": "x"},
    }
    for step, body in steps.items():
        assert grid1.post(f"{APPS}{app.pk}/{step}", body, format="json").status_code == 404
    up = SimpleUploadedFile("x.pdf", PDF, "application/pdf")
    r = grid1.post(f"{APPS}{app.pk}/documents/", {"file": up, "name": "x"}, format="multipart")
    assert r.status_code == 404
    app.refresh_from_db()
    assert app.status == "submitted" and app.attachments.count() == 1


def test_a_foreign_id_in_a_body_reads_as_one_that_does_not_exist(demo, member_client):
    grid1 = member_client("grid1")
    mine, theirs = _hh(demo.grids[0]), _hh(demo.grids[1])
    missing = _unused_id(Household)

    def submit(**body):  # type: ignore[no-untyped-def]
        r = grid1.post(APPS, {"kind": "temp_relief", **body}, format="json")
        return r.status_code, r.json()

    assert (
        submit(household=theirs.pk)
        == submit(household=missing)
        == (
            400,
            {"household": ["not found"]},
        )
    )
    # an applicant of another household (grid 2's), a visit to another household
    assert submit(household=mine.pk, applicant=_resident(theirs).pk) == (
        400,
        {"applicant": ["not found"]},
    )
    from gridsvc.visits.models import Visit

    foreign_visit = Visit.objects.filter(household__unit__building__grid=demo.grids[1]).first()
    assert submit(household=mine.pk, visit=foreign_visit.pk) == (400, {"visit": ["not found"]})
    # a migrant's arrival for a resident of grid 2
    arrive = {"arrived_on": "2026-10-01"}
    a = grid1.post(MIGRANTS, {"resident": _resident(theirs).pk, **arrive}, format="json")
    b = grid1.post(MIGRANTS, {"resident": _unused_id(Resident), **arrive}, format="json")
    assert (
        (a.status_code, a.json())
        == (b.status_code, b.json())
        == (
            400,
            {"resident": ["not found"]},
        )
    )
    assert not Migrant.objects.filter(resident=_resident(theirs), arrived_on="2026-10-01").exists()
    # the same through the phone's batch: each item rejected "not found", nothing stored
    foreign_migrant = migrants.record_arrival(_member("grid2"), _resident(theirs), date(2026, 9, 1))
    items = [
        {"kind": "application", "data": {"household": theirs.pk, "kind": "dibao"}},
        {"kind": "arrival", "data": {"resident": _resident(theirs).pk, **arrive}},
        {"kind": "departure", "data": {"migrant": foreign_migrant.pk, "departed_on": "2026-11-01"}},
        {"kind": "departure", "data": {"resident": _resident(theirs).pk, "departed_on": "2026-11-01"}},
    ]  # fmt: skip
    for item in items:
        item["client_uuid"] = str(uuid.uuid4())
    results = grid1.post(BATCH, {"items": items}, format="json").json()["results"]
    assert [r["status"] for r in results] == ["rejected"] * 4
    assert [list(r["errors"].values()) for r in results] == [[["not found"]]] * 4
    foreign_migrant.refresh_from_db()
    assert foreign_migrant.departed_on is None
    assert not Application.objects.filter(household=theirs, kind="dibao").exists()


def test_another_members_client_uuid_replays_none_of_their_rows(demo, member_client):
    """A phone's ``client_uuid`` makes a retry return the stored row. The same uuid sent by
    someone else (copied from a log, a shared device, a guess) must not hand them that row."""
    theirs, mine = _hh(demo.grids[1]), _hh(demo.grids[0])
    key = uuid.uuid4()
    services.submit(_member("grid2"), theirs, "temp_relief", client_uuid=key)
    grid1 = member_client("grid1")
    r = grid1.post(
        APPS, {"household": mine.pk, "kind": "temp_relief", "client_uuid": str(key)}, format="json"
    )
    assert r.status_code == 400 and "client_uuid" in r.json()
    assert str(theirs.pk) not in r.content.decode()
    arrival = uuid.uuid4()
    migrants.arrive(_member("grid2"), _resident(theirs), date(2026, 9, 1), client_uuid=arrival)
    item = {
        "kind": "arrival",
        "client_uuid": str(arrival),
        "data": {"resident": _resident(mine).pk, "arrived_on": "2026-09-01"},
    }
    result = grid1.post(BATCH, {"items": [item]}, format="json").json()["results"][0]
    assert result["status"] == "rejected" and "id" not in result
    assert not Migrant.objects.filter(resident=_resident(mine), arrived_on="2026-09-01").exists()


def test_an_idempotency_key_replays_nothing_to_another_member(demo, member_client):
    mine, theirs = _hh(demo.grids[0]), _hh(demo.grids[1])
    before = Application.objects.filter(household=mine).count()
    key = str(uuid.uuid4())
    first = member_client("grid2").post(
        APPS, {"household": theirs.pk, "kind": "temp_relief"}, format="json", HTTP_IDEMPOTENCY_KEY=key
    )  # fmt: skip
    assert first.status_code == 201
    # grid 1 sends the very same request with the same key: its own answer, not grid 2's
    same = member_client("grid1").post(
        APPS, {"household": theirs.pk, "kind": "temp_relief"}, format="json", HTTP_IDEMPOTENCY_KEY=key
    )  # fmt: skip
    assert same.status_code == 400 and same.json() == {"household": ["not found"]}
    assert same.headers.get("Idempotent-Replayed") is None
    own = member_client("grid1").post(
        APPS, {"household": mine.pk, "kind": "temp_relief"}, format="json", HTTP_IDEMPOTENCY_KEY=key
    )  # fmt: skip
    # the key's first answer for grid 1 was its 400: replayed to grid 1 only (another body: 422)
    assert own.status_code == 422
    assert Application.objects.filter(household=mine).count() == before


# ================================================================ reports: the street tier elsewhere
def _street_post_elsewhere(username: str) -> Street:
    """``username`` also runs another street's dispatch desk (a street-tier post): what it
    reads of the demo street must stay what its demo post allows."""
    other = Street.objects.create(code="620103099", name="别的街道")
    Position.objects.create(
        position_type=PositionType.STREET_DISPATCHER,
        member=_member(username),
        street=other,
        valid_from=datetime.now(SHANGHAI) - timedelta(days=30),
    )
    return other


REPORT = "/api/v1/reports/monthly/?community={code}&month=2026-10"


def test_a_street_post_elsewhere_gives_no_exact_small_counts_here(demo, member_client):
    _street_post_elsewhere("grid1")
    body = member_client("grid1").get(REPORT.format(code=demo.community.code)).json()
    # a grid member of this community: its figures over grid 1 only, small ones suppressed
    assert body["privacy"]["sensitive_figures"] == "suppressed_below_k"
    grid1_residents = Resident.objects.filter(household__unit__building__grid=demo.grids[0])
    assert body["population"]["residents"] == grid1_residents.count()
    # the assistance figures and gaps: the same rule
    figures = member_client("grid1").get(f"{APPS}figures/").json()["figures"]
    counts = [v for row in figures.values() for v in row.values() if isinstance(v, int)]
    assert not [n for n in counts if 0 < n < 5], figures


def test_a_report_kept_as_issued_is_not_served_past_the_readers_territory(demo, member_client):
    code = demo.community.code
    issued = member_client("street").post(
        "/api/v1/reports/issued/", {"community": code, "month": "2026-10"}, format="json"
    )
    assert issued.status_code == 201, issued.content
    whole = issued.json()["population"]["residents"]
    _street_post_elsewhere("grid1")
    body = member_client("grid1").get(REPORT.format(code=code)).json()
    assert "issued" not in body  # the issued figures are the whole community's
    assert body["population"]["residents"] < whole
    assert [g["code"] for g in body["grids"]] == [demo.grids[0].code]
    # the street office itself still gets the report as issued
    assert "issued" in member_client("street").get(REPORT.format(code=code)).json()


def test_the_gaps_layer_of_a_grid_held_beside_another_streets_post_suppresses(demo, member_client):
    _street_post_elsewhere("grid1")
    features = member_client("grid1").get("/api/v1/layers/assistance_gaps/?page_size=500")
    assert features.status_code == 200
    counts = [
        v
        for f in features.json()["features"]
        for k, v in f["properties"].items()
        if k in ("dibao", "public_housing", "recheck_overdue")
    ]
    assert counts and not [n for n in counts if n is not None and 0 < n < 5], counts
    assert None in counts  # the demo's grid 1 has small cells: shown as null ("<5")


# ================================================================ Open311
OPEN311 = "/open311/v2"


def _open311_report(client, grid, **extra):  # type: ignore[no-untyped-def]
    from gridsvc.territory.models import Building

    b = Building.objects.filter(grid=grid).order_by("code").first()
    body = {"service_code": "neighbour.noise", "lat": str(b.point.y), "long": str(b.point.x)}
    r = client.post(f"{OPEN311}/requests.json", {**body, **extra}, format="multipart")
    assert r.status_code == 201, r.content
    return r.json()[0]["service_request_id"]


def test_without_a_login_open311_tells_nothing_of_any_case(demo, member_client):
    number = _open311_report(member_client("grid1"), demo.grids[0], description="楼道噪音")
    anon = APIClient()
    listed = anon.get(f"{OPEN311}/requests.json")
    one = anon.get(f"{OPEN311}/requests/{number}.json")
    missing = anon.get(f"{OPEN311}/requests/no-such-number.json")
    assert listed.status_code == one.status_code == missing.status_code == 401
    assert one.json() == missing.json()  # not even whether the number exists
    assert number not in listed.content.decode() + one.content.decode()
    # an api_key is read on POST only, and a bad one is refused, not ignored
    bad = anon.post(
        f"{OPEN311}/requests.json?api_key=not-a-token",
        {"service_code": "neighbour.noise", "lat": "36.06", "long": "103.78"},
        format="json",
    )
    assert bad.status_code == 401
    # another grid's member: 404 worded as for a number that does not exist
    grid2 = member_client("grid2")
    theirs = grid2.get(f"{OPEN311}/requests/{number}.json")
    assert theirs.status_code == 404 and number not in str(theirs.json()).replace(number, "", 1)
    assert number not in {x["service_request_id"] for x in grid2.get(f"{OPEN311}/requests.json").json()}  # fmt: skip


def test_a_reporters_phone_typed_in_the_description_does_not_come_back(demo, member_client):
    number = _open311_report(
        member_client("grid1"),
        demo.grids[0],
        description="楼上深夜装修,我是马建国,电话 139 1234 5678,身份证620103197105060179",
        first_name="建国",
        last_name="马",
        phone="13912345678",
    )
    # read by the grid's cadre (in the territory, not the reporter)
    body = member_client("cadre1").get(f"{OPEN311}/requests/{number}.json")
    assert body.status_code == 200
    text = body.content.decode()
    for clear in ("13912345678", "139 1234 5678", "620103197105060179", "马建国"):
        assert clear not in text, clear
    assert "*******5678" in body.json()[0]["description"]
    assert "马*国" in body.json()[0]["description"]
    # the handler's note, the request's status_notes, says the phone again: masked there too
    from gridsvc.cases import services as case_services
    from gridsvc.cases.models import Case

    case = Case.objects.get(number=number)
    case_services.record(case, "note", case.handler, note="已电话联系马建国 13912345678")
    notes = member_client("cadre1").get(f"{OPEN311}/requests/{number}.json").json()[0]
    assert notes["status_notes"] == "已电话联系马*国 *******5678"


# ================================================================ a mask beside a clear field
def test_a_migrants_masked_phone_is_not_in_clear_in_its_free_text(demo, member_client):
    from gridsvc.assistance.sync import changes

    household = _hh(demo.grids[0])
    migrant = migrants.record_arrival(
        _member("grid1"),
        _resident(household),
        date(2026, 9, 1),
        home_contact="父亲 马某 13993001234(村委会 0931-8123456)",
        home_contact_phone="0931-8123456",
        employer="个体,电话13993001234",
    )
    api = member_client("grid1").get(f"{MIGRANTS}{migrant.pk}/").json()
    feed = changes(_member("grid1"), None, 500)
    row = next(m for m in feed["migrants"] if m["id"] == migrant.pk)
    for shown in (api, row):
        assert shown["home_contact_phone"] == mask_phone("0931-8123456") == "********3456"
        text = json.dumps(shown, ensure_ascii=False)
        assert "8123456" not in text and "13993001234" not in text, text
        assert shown["home_contact"] == "父亲 马某 *******1234(村委会 ********3456)"
    assert api == {**row, "household": api["household"]}  # the API and the feed agree
    # under an unmask grant (audited) the staff see what was recorded
    _grant("street")
    clear = member_client("street").get(f"{MIGRANTS}{migrant.pk}/?unmask=1").json()
    assert clear["home_contact_phone"] == "0931-8123456" and "13993001234" in clear["employer"]


def test_a_masked_amount_is_not_in_clear_in_the_applications_notes(demo, member_client):
    from gridsvc.assistance.sync import changes

    grid1, cadre1, street = (_member(u) for u in ("grid1", "cadre1", "street"))
    app = services.submit(grid1, _hh(demo.grids[0]), "dibao", reason="失业").application
    services.check(
        grid1, app.pk, members_count=3, monthly_income=450, documents=["户口簿"],
        note="申报月收入450元",
    )  # fmt: skip
    services.review(cadre1, app.pk, recommended=True, opinion="收入450元低于标准,同意")
    services.decide(
        street, app.pk, approved=True, reason="批准,每月620.00元", amount=620,
        start_date=date(2026, 10, 1),
    )  # fmt: skip
    api = member_client("grid1").get(f"{APPS}{app.pk}/").json()
    feed = changes(grid1, None, 500)
    row = next(a for a in feed["applications"] if a["id"] == app.pk)
    for shown in (api, row):
        assert shown["amount"] == shown["monthly_income"] == "**"
        text = json.dumps(shown, ensure_ascii=False)
        assert "620" not in text and "450" not in text, text
        assert shown["decision_reason"] == "批准,每月**元"
    _grant("street")
    clear = member_client("street").get(f"{APPS}{app.pk}/?unmask=1").json()
    assert clear["decision_reason"] == "批准,每月620.00元" and clear["amount"] == "620.00"


# ================================================================ files
def _png() -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (4, 4), (200, 30, 30)).save(buf, format="PNG")
    return buf.getvalue()


def test_a_file_of_another_territory_is_reached_by_no_id_url_or_revoked_device(
    demo, member_client, token_client, settings, tmp_path
):
    from gridsvc.cases.models import Case

    settings.MEDIA_ROOT = tmp_path
    grid1 = token_client("grid1")
    case = (
        scope_for(_member("grid1"))
        .filter(Case.objects.all())
        .exclude(pk__in=scope_for(_member("grid2")).filter(Case.objects.all()).values("pk"))
        .exclude(handler__username="grid2")
        .exclude(reported_by__username="grid2")
        .order_by("id")
        .first()
    )
    up = SimpleUploadedFile("x.png", _png(), "image/png")
    r = grid1.post(f"/api/v1/cases/{case.pk}/attachments/", {"file": up, "role": "photo"}, format="multipart")  # fmt: skip
    assert r.status_code == 201, r.content
    url, att = r.json()["url"], r.json()["id"]
    assert grid1.get(url).status_code == 200
    # another grid, a building head elsewhere: 404 as for an id that does not exist
    for other in (member_client("grid2"), member_client("bh-002")):
        assert other.get(url).status_code == 404
        assert other.get(f"/api/v1/cases/{case.pk}/attachments/{att + 10**6}/file/").status_code == 404  # fmt: skip
    # grid 2 names the attachment under one of its own cases: still 404
    theirs = scope_for(_member("grid2")).filter(Case.objects.all()).order_by("id").first()
    assert member_client("grid2").get(f"/api/v1/cases/{theirs.pk}/attachments/{att}/file/").status_code == 404  # fmt: skip
    # the stored file by a guessed /media/ URL: nothing serves it
    stored = next(p for p in tmp_path.rglob("*") if p.is_file())
    rel = stored.relative_to(tmp_path).as_posix()
    for guess in (f"/media/{rel}", f"/{rel}", f"/api/v1/media/{rel}"):
        assert grid1.get(guess).status_code == 404, guess
    # the phone is lost and signed out: its token no longer fetches the file
    from gridsvc.accounts.models import Device

    Device.objects.filter(member__username="grid1").update(revoked_at=datetime.now(SHANGHAI))
    assert grid1.get(url).status_code == 401


# ================================================================ small cells by subtraction
def test_a_small_rest_beside_a_part_is_suppressed_like_a_small_part(demo, member_client):
    """Grid 1 with all but three residents of a minority: '297 minority of 300' tells that
    three named neighbours are Han as surely as '3' would."""
    residents = Resident.objects.filter(household__unit__building__grid=demo.grids[0])
    han = list(residents.order_by("id").values_list("id", flat=True)[:3])
    residents.exclude(id__in=han).update(ethnicity="03")
    Resident.objects.filter(id__in=han).update(ethnicity="01")
    url = REPORT.format(code=demo.community.code)
    body = member_client("grid1").get(url).json()
    row = next(g for g in body["grids"] if g["code"] == demo.grids[0].code)
    assert row["residents"] == residents.count() > 100
    assert row["minority_residents"] is None and row["minority_share"] is None
    assert row["minority_households"] is None  # at most three households have a Han head
    assert body["population"]["minority_residents"] is None
    # the street office reads its street exactly
    street = member_client("street").get(url).json()
    exact = next(g for g in street["grids"] if g["code"] == demo.grids[0].code)
    assert exact["minority_residents"] == residents.count() - 3


def test_assistance_figures_hide_a_small_rest_too(demo):
    from gridsvc.assistance.figures import suppressed
    from gridsvc.chain.visibility import Tier

    row = {"kind": "dibao", "households": 12, "people": 40, "minority_people": 37,
           "minority_households": 10, "minority_people_share": 92.5,
           "minority_households_share": 83.3}  # fmt: skip
    staff = suppressed(dict(row), Tier.STAFF)
    assert staff["people"] == 40 and staff["households"] == 12
    assert staff["minority_people"] is None and staff["minority_people_share"] is None
    assert staff["minority_households"] is None and staff["minority_households_share"] is None
    assert suppressed(dict(row), Tier.STREET) == row


def test_an_id_number_typed_in_a_documents_name_is_masked_without_a_grant(
    demo, member_client, settings, tmp_path
):
    from gridsvc.assistance.documents import attach
    from gridsvc.uploads import check_upload

    settings.MEDIA_ROOT = tmp_path
    grid1 = _member("grid1")
    app = services.submit(grid1, _hh(demo.grids[0]), "temp_relief").application
    number = make_id_number("620103", date(1971, 5, 6), 17, female=False)
    upload = check_upload(PDF, "file", max_bytes=10**6)
    attach(grid1, app.pk, upload, f"身份证 {number}")
    services.check(
        grid1, app.pk, members_count=2, monthly_income=300, documents=[f"身份证{number}"]
    )
    shown = member_client("grid1").get(f"{APPS}{app.pk}/").json()
    listed = member_client("grid1").get(f"{APPS}{app.pk}/documents/").json()
    text = json.dumps([shown, listed], ensure_ascii=False)
    assert number not in text and mask_id_number(number) in text


def test_a_signed_out_phone_gets_no_stored_answer_replayed(demo, token_client):
    from gridsvc.accounts.models import Device

    phone = token_client("grid1")
    key = str(uuid.uuid4())
    body = {"household": _hh(demo.grids[0], 1).pk, "kind": "temp_relief", "reason": "住院"}
    first = phone.post(APPS, body, format="json", HTTP_IDEMPOTENCY_KEY=key)
    assert first.status_code == 201
    # the phone is stolen and signed out; the thief replays the request the phone kept
    Device.objects.filter(member__username="grid1").update(revoked_at=datetime.now(SHANGHAI))
    again = phone.post(APPS, body, format="json", HTTP_IDEMPOTENCY_KEY=key)
    assert again.status_code == 401 and again.headers.get("Idempotent-Replayed") is None
    assert "住院" not in again.content.decode()


def test_a_documents_retry_racing_its_first_try_gets_the_stored_one_and_leaves_no_file(
    demo, member_client, settings, tmp_path, monkeypatch
):
    """Two uploads with the same client_uuid (a phone's retry while the first is still being
    stored): the second meets the first's row at the unique index — it answers with that
    document (200), not a 500, and the file it had written is not left on disk."""
    from gridsvc.assistance import documents

    settings.MEDIA_ROOT = tmp_path
    app = services.submit(_member("grid1"), _hh(demo.grids[0]), "temp_relief").application
    key = uuid.uuid4()
    original = documents._locked
    first: dict[str, ApplicationDocument] = {}

    def locked_after_the_first_try_stored(app_id, *expected):  # type: ignore[no-untyped-def]
        row = original(app_id, *expected)
        if not first:  # the first try commits between our lookup and our insert
            first["doc"] = ApplicationDocument.objects.create(
                application=row, name="收入证明", file="assistance/first.pdf",
                content_type="application/pdf", size=len(PDF), sha256="0" * 64, client_uuid=key,
            )  # fmt: skip
        return row

    monkeypatch.setattr(documents, "_locked", locked_after_the_first_try_stored)
    up = SimpleUploadedFile("x.pdf", PDF, "application/pdf")
    r = member_client("grid1").post(
        f"{APPS}{app.pk}/documents/",
        {"file": up, "name": "收入证明", "client_uuid": str(key)},
        format="multipart",
    )
    assert r.status_code == 200, r.content
    assert r.json()["id"] == first["doc"].pk
    assert ApplicationDocument.objects.filter(client_uuid=key).count() == 1
    assert not [p for p in tmp_path.rglob("*") if p.is_file()]  # the losing copy is gone
