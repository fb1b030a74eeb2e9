"""The work report's figures table (xlsx 民族团结进步创建 sheet and the PDF's section) carries every figure
of the community section (民族团结进步创建, ``unity``) of the report JSON — the campaign
returns, interpreter calls, sign-offs and the rest used to be in the JSON only — and the
OpenAPI schema names the shapes of the community endpoints that answer free objects."""

from __future__ import annotations

import io
from datetime import UTC, datetime

import pytest
from openpyxl import load_workbook

pytestmark = pytest.mark.django_db

MONTH = "2026-10"

#: the figures the table lacked before (label as printed)
NEW_ROWS = {
    "campaign_returns": "专项排查应报(网格·次)",
    "campaign_returns_filed": "专项排查已报(网格·次)",
    "interpreter_calls": "翻译随行(次)",
    "ethnic_sign_offs": "民族宗教事务会签(件)",
    "mediations_agreed": "其中达成协议",
    "group_petitions": "群体性信访(件)",
    "venue_hazards": "宗教场所走访发现隐患",
    "screening_persons": "五员排查投入人次(本期)",
}


def test_the_monthly_xlsx_has_a_row_for_every_community_figure(demo, member_client):
    from gridsvc.accounts.models import Member
    from gridsvc.cases.models import Case
    from gridsvc.community.models import InterpreterCall
    from gridsvc.reports.render import UNITY_ROWS
    from gridsvc.territory.models import Household

    # the demo calls no interpreter: one 请翻译随行 in October (a case at a 东乡语 household)
    grid = demo.grids[0]
    call = InterpreterCall.objects.create(
        street=demo.street,
        community=demo.community,
        grid=grid,
        household=Household.objects.filter(unit__building__grid=grid).order_by("pk").first(),
        language="sce",
        recorded_by=Member.objects.get(username="grid1"),
        case=Case.objects.filter(community=demo.community).order_by("pk").first(),
    )
    InterpreterCall.objects.filter(pk=call.pk).update(
        created_at=datetime(2026, 10, 12, 9, tzinfo=UTC)
    )
    street = member_client("street")
    url = f"/api/v1/reports/monthly/?community={demo.community.code}&month={MONTH}"
    unity = street.get(f"{url}&format=json").json()["unity"]
    r = street.get(f"{url}&format=xlsx")
    assert r.status_code == 200
    sheet = load_workbook(io.BytesIO(r.content))["民族团结进步创建"]
    cells = {row[0]: row[1] for row in sheet.iter_rows(min_row=2, values_only=True) if row}
    # every count of the section has a row, with the JSON's value
    labels = dict(UNITY_ROWS)
    assert set(unity) - set(labels) == {"screening_summary", "member_languages"}
    for key, label in NEW_ROWS.items():
        assert labels[key] == label
    assert {labels[k]: cells.get(labels[k]) for k in labels} == {
        labels[k]: unity[k] for k in labels
    }
    # the demo's October: a campaign with a return due from each of the 7 grids, 6 filed
    assert cells["专项排查应报(网格·次)"] == 7 and cells["专项排查已报(网格·次)"] == 6
    assert cells["翻译随行(次)"] == 1
    # the 五员 sentence is written under the table
    assert cells["五员排查"] == unity["screening_summary"]


# ---------------------------------------------------------------- the schema is the contract
def _components() -> dict:
    from drf_spectacular.generators import SchemaGenerator

    return SchemaGenerator().get_schema(request=None, public=True)


def _as_jsonschema(node):  # type: ignore[no-untyped-def]
    """OpenAPI 3.0 → JSON Schema: ``nullable: true`` becomes a type that allows null."""
    if isinstance(node, dict):
        node = {k: _as_jsonschema(v) for k, v in node.items()}
        if node.pop("nullable", False):
            node = {"anyOf": [node, {"type": "null"}]}
        return node
    if isinstance(node, list):
        return [_as_jsonschema(v) for v in node]
    return node


def _same_keys(body, schema: dict, components: dict, where: str) -> list[str]:  # type: ignore[no-untyped-def]
    """Where a real answer has keys the declared shape lacks, or lacks declared ones."""
    while "$ref" in schema or "allOf" in schema:
        schema = (
            components[schema["$ref"].rsplit("/", 1)[1]] if "$ref" in schema else schema["allOf"][0]
        )
    out = []
    if isinstance(body, dict) and "properties" in schema:
        if set(body) != set(schema["properties"]):
            out.append(f"{where}: {sorted(set(body) ^ set(schema['properties']))}")
        for k, v in body.items():
            if k in schema["properties"]:
                out += _same_keys(v, schema["properties"][k], components, f"{where}.{k}")
    elif isinstance(body, list) and "items" in schema:
        for v in body[:3]:
            out += _same_keys(v, schema["items"], components, f"{where}[]")
    return out


def test_the_community_endpoints_declare_their_shapes(demo, member_client):
    import jsonschema

    from gridsvc.community.models import Campaign, ResidentLanguage

    schema = _components()
    components = schema["components"]["schemas"]
    elder = ResidentLanguage.objects.filter(interpreter_needed=True).order_by("id").first()
    campaign = Campaign.objects.filter(community=demo.community).order_by("id").first()
    calls = {
        # path in the schema: (who, the URL, the component named)
        "/api/v1/community/screening/day/": (
            "street",
            "/api/v1/community/screening/day/?date=2026-09-15",
            "ScreeningDay",
        ),
        "/api/v1/community/figures/": (
            "street",
            "/api/v1/community/figures/?month=2026-09",
            "UnityMonthFigures",
        ),
        "/api/v1/community/district/": (
            "district",
            "/api/v1/community/district/?year=2026&month=9",
            "DistrictOverview",
        ),
        "/api/v1/community/languages/interpreters/": (
            "street",
            f"/api/v1/community/languages/interpreters/?household={elder.resident.household_id}",
            "HouseholdInterpreters",
        ),
        "/api/v1/community/campaigns/{id}/coverage/": (
            "street",
            f"/api/v1/community/campaigns/{campaign.pk}/coverage/",
            "CampaignCoverage",
        ),
        "/api/v1/community/activities/map/": (
            "street",
            "/api/v1/community/activities/map/?from=2026-01-01&to=2026-12-31",
            "ActivityFeatureCollection",
        ),
    }
    for path, (who, url, name) in calls.items():
        ok = schema["paths"][path]["get"]["responses"]["200"]["content"]["application/json"]
        assert ok["schema"] == {"$ref": f"#/components/schemas/{name}"}, path
        r = member_client(who).get(url)
        assert r.status_code == 200, (url, r.content[:300])
        body = r.json()
        assert _same_keys(body, components[name], components, name) == []
        doc = {"$ref": f"#/components/schemas/{name}", "components": {"schemas": components}}
        validator = jsonschema.Draft202012Validator(_as_jsonschema(doc))
        errors = [f"{list(e.path)}: {e.message}" for e in validator.iter_errors(body)]
        assert errors == [], (path, errors[:5])
    # the map is GeoJSON: a FeatureCollection of Features with Point geometries

    def enum(schema: dict) -> list[str]:
        return components[schema["$ref"].rsplit("/", 1)[1]]["enum"]

    def props(name: str) -> dict:
        return components[name]["properties"]

    assert enum(props("ActivityFeatureCollection")["type"]) == ["FeatureCollection"]
    assert enum(props("ActivityFeature")["type"]) == ["Feature"]
    assert enum(props("PointGeometry")["type"]) == ["Point"]


# ---------------------------------------------------------------- the phone's feed
def _drain(client, since: str | None = None) -> dict:  # type: ignore[no-untyped-def]
    """Every page of the community feed from ``since``: rows per stream, and the last cursor."""
    rows: dict[str, list] = {}
    while True:
        url = "/api/v1/community/changes/?limit=200" + (f"&since={since}" if since else "")
        r = client.get(url)
        assert r.status_code == 200, r.content[:300]
        body = r.json()
        for key, value in body.items():
            if isinstance(value, list):
                rows.setdefault(key, []).extend(value)
        since = body["cursor"]
        if not body["has_more"]:
            return {**rows, "cursor": since}


def test_the_phone_feed_carries_ratings_mediations_and_sign_offs(demo, member_client):
    from gridsvc.accounts.models import Member
    from gridsvc.community.models import Mediation, Rating, SignOff
    from gridsvc.community.services import work_scope

    streams = {"ratings": Rating, "mediations": Mediation, "sign_offs": SignOff}
    for who in ("street", "grid1"):
        member = Member.objects.get(username=who)
        feed = _drain(member_client(who))
        for key, model in streams.items():
            expected = set(
                work_scope(member).filter(model.objects.all()).values_list("pk", flat=True)
            )
            assert {row["id"] for row in feed[key]} == expected, (who, key)
        if who == "street":  # the demo has all three on the street
            assert all(feed[key] for key in streams), {k: len(feed[k]) for k in streams}
    # a rating revised (动态管理: revoked) after the cursor comes again, alone
    rating = Rating.objects.filter(grid=demo.grids[0], revoked=False).order_by("pk").first()
    rating.revoked = True
    rating.save()
    again = _drain(member_client("grid1"), feed["cursor"])
    assert [(r["id"], r["revoked"]) for r in again["ratings"]] == [(rating.pk, True)]
    assert again["mediations"] == [] and again["sign_offs"] == []
