"""One range for every date-time a client sends (api.fields: 1970-01-01 ≤ t < 2100-01-01 UTC),
in what the schema publishes and in the phone's clock header.

- The OpenAPI ``pattern`` of the layers' ``since``/``until`` (and aliases), OGC API ``datetime``
  and Open311's ``start_date``/``end_date`` allowed years 1900–2999, so a client (or
  schemathesis) that followed the schema sent values the server refuses. The patterns now have
  the years 1970–2099 and every real day of them (29–31 included, 29 February only in leap
  years); a value that matches is accepted, except at the two edges a pattern cannot express
  (the range is in UTC: 1970-01-01T00:00+08:00 is 1969, 2099-12-31T20:00-05:00 is 2100),
  which the description says.
- Open311's ``end_date`` given as a day was that day's midnight, not its end (Django's
  ``parse_datetime`` reads a day alone); it is the next day's start, as published.
- ``X-Device-Time`` at year 706 or 9999, or epoch ms at 2100 and beyond, was taken as the
  phone's clock and visit times were "corrected" by it; it is now a 400 ``bad_device_time``
  naming the header, and nothing is stored. In-range clocks (a phone reset to 1970 or 2000)
  are read as before.
"""

from __future__ import annotations

import re
import uuid
from datetime import UTC, date, datetime, time, timedelta

import pytest
from django.utils import timezone
from hypothesis import example, given, settings
from hypothesis import strategies as st
from rest_framework.exceptions import ValidationError

from api import fields
from api.fields import CLIENT_TIME_MESSAGE
from api.layer_params import (
    INSTANT_PATTERN,
    INTERVAL_PATTERN,
    layer_filter_params,
    parse,
    parse_ogc_items,
)
from api.open311 import Open311DateField
from gridsvc.sync import clock
from gridsvc.visits.models import Visit, VisitTask

from .cases_helpers import report

pytestmark = pytest.mark.django_db

HYPOTHESIS = settings(max_examples=300, deadline=None, derandomize=True)
ASCII = st.characters(codec="ascii")  # JSON Schema's \d is [0-9]

#: what the old patterns (years 1900–2999) let through and the server refuses
REFUSED_BUT_WERE_PUBLISHED = [
    "1900-01-01",
    "1969-12-28T23:59:59Z",
    "1969-12-28T23:59:59+14:00",
    "2100-01-01",
    "2100-01-01T00:00:00Z",
    "2999-12-28T23:59:59-08:00",
]
#: the range's ends as far as the pattern goes, and days 29–31
PUBLISHED_EDGES = [
    "1970-01-01T00:00:00Z",
    "1970-01-01T00:00Z",
    "1970-01-01T08:00",
    "1970-01-02",
    "2099-12-28",
    "2099-12-28T23:59:59.999999-14:59",
    "2099-12-31",
    "2099-12-31T15:59:59.999999Z",
    "2026-12-31T23:59+08:00",
    "2026-01-30",
    "2024-02-29",
    "2000-02-29",
    "1972-02-29T12:00+08:00",
]
#: not days: a pattern that let them through would publish values the server refuses
NOT_DAYS = ["2026-02-29", "2100-02-29", "1970-02-30", "2026-04-31", "2026-11-31", "2026-02-30"]


# ---------------------------------------------------------------- the published patterns
@pytest.fixture(scope="module")
def schema(django_db_setup, django_db_blocker):  # type: ignore[no-untyped-def]
    from drf_spectacular.generators import SchemaGenerator

    with django_db_blocker.unblock():
        return SchemaGenerator().get_schema(request=None, public=True)


def _time_parameters(schema: dict) -> dict[tuple[str, str], dict]:
    """Every query parameter whose schema has a date-time pattern: (path, name) → parameter."""
    out = {}
    for path, operations in schema["paths"].items():
        for op in operations.values():
            for p in op.get("parameters", []) if isinstance(op, dict) else []:
                if p["schema"].get("pattern") in (INSTANT_PATTERN, INTERVAL_PATTERN):
                    out[(path, p["name"])] = p
    return out


def test_every_published_time_pattern_has_the_years_the_server_accepts(schema):
    params = _time_parameters(schema)
    names = {name for _path, name in params}
    assert {"since", "until", "from", "to", "datetime", "start_date", "end_date"} <= names
    assert ("/open311/v2/requests.json", "start_date") in params
    assert ("/ogc/collections/{collection_id}/items", "datetime") in params
    for (path, name), p in params.items():
        pattern = p["schema"]["pattern"]
        for bad in REFUSED_BUT_WERE_PUBLISHED:
            assert not re.fullmatch(pattern, bad), (path, name, bad)
        for good in PUBLISHED_EDGES:
            assert re.fullmatch(pattern, good), (path, name, good)
        for bad in NOT_DAYS:
            assert not re.fullmatch(pattern, bad), (path, name, bad)
        # the rest the pattern cannot say is in the description: the range is in UTC
        assert fields.CLIENT_TIME_RANGE in p["description"], (path, name)
        assert "1970-01-01T00:00+08:00" in p["description"], (path, name)
        assert "2099-12-31T20:00-05:00" in p["description"], (path, name)
    ogc = params[("/ogc/collections/{collection_id}/items", "datetime")]["schema"]["pattern"]
    for interval in ("1970-01-01/2099-12-31", "../2099-12-31T23:59Z", "2026-01-01T08:00+08:00/.."):
        assert re.fullmatch(ogc, interval), interval
    for interval in ("1969-12-28/2026-01-01", "../2100-01-01", "2100-01-01T00:00Z/.."):
        assert not re.fullmatch(ogc, interval), interval


def _utc(text: str, *, end: bool = False) -> datetime:
    """The instant a pattern-valid value names, worked out here on its own: a day alone is
    its start (with ``end`` the next day's), a time without an offset the server's time zone."""
    if len(text) == 10:
        day = date.fromisoformat(text) + timedelta(days=1 if end else 0)
        return timezone.make_aware(datetime.combine(day, time.min)).astimezone(UTC)
    moment = datetime.fromisoformat(text.replace(" ", "T"))
    if timezone.is_naive(moment):
        moment = timezone.make_aware(moment)
    return moment.astimezone(UTC)


def _outcome(read) -> str | None:  # type: ignore[no-untyped-def]
    """None when ``read()`` accepts, else the error text."""
    try:
        read()
    except ValidationError as exc:
        return str(exc.detail)
    return None


@HYPOTHESIS
@given(st.from_regex(INSTANT_PATTERN, fullmatch=True, alphabet=ASCII), st.booleans())
@example("1970-01-01T00:00+08:00", False)  # the edge: 1969-12-31T16:00Z
@example("1970-01-01", False)  # the server's +08:00: the same edge
@example("1970-01-01", True)  # its end, the next day, is in range
@example("1970-01-01T00:00Z", False)
@example("1970-01-01T07:59:59.999999-00:01", True)
@example("2099-12-28T23:59:59.999999-14:59", True)
@example("2099-12-28", True)
@example("2099-12-31", True)  # its end, 2100-01-01T00:00+08:00, is 2099-12-31T16:00Z
@example("2099-12-31T20:00-05:00", False)  # the late edge: 2100-01-01T01:00Z
@example("2024-02-29T23:59:59+08:00", True)
def test_a_value_matching_the_instant_pattern_is_refused_only_at_the_utc_edges(value, end):
    """Layers' ``since``/``until`` and Open311's ``start_date``/``end_date``: a value that
    matches the published pattern is accepted, unless it is before 1970 in UTC (an offset
    east of UTC, or none: the server's +08:00, on 1970-01-01) or from 2100 on (an offset west of
    UTC late on 2099-12-31)."""
    edge = not fields.EARLIEST <= _utc(value, end=end) < fields.LATEST
    layer = "until" if end else "since"
    for read in (
        lambda: parse(layer_filter_params(None), {layer: value}),
        lambda: Open311DateField(end=end).run_validation(value),
    ):
        problem = _outcome(read)
        if edge:
            assert problem is not None and CLIENT_TIME_MESSAGE in problem, (value, problem)
        else:
            assert problem is None, (value, end, problem)


@HYPOTHESIS
@given(st.from_regex(INTERVAL_PATTERN, fullmatch=True, alphabet=ASCII))
@example("1970-01-01")  # the edge (the server's +08:00)
@example("1970-01-01T00:00+08:00/..")
@example("../1970-01-01")  # its end is the next day: in range
@example("1970-01-01T00:00Z/2099-12-28T23:59-14:59")
@example("2099-12-28")
@example("2099-12-31/2099-12-31T23:00-02:00")  # the late edge
@example("2000-02-29/..")
def test_a_value_matching_the_ogc_datetime_pattern_is_refused_only_at_the_utc_edges(value):
    ends = [(e, i == 1) for i, e in enumerate(value.split("/")) if e not in ("", "..")]
    edge = any(not fields.EARLIEST <= _utc(e, end=is_end) < fields.LATEST for e, is_end in ends)
    problem = _outcome(lambda: parse_ogc_items("cases", {"datetime": value}))
    if edge:
        assert problem is not None and CLIENT_TIME_MESSAGE in problem, (value, problem)
    else:  # an interval may still end before it starts: that is not the range
        assert problem is None or "start after end" in problem, (value, problem)


def test_an_open311_end_date_that_is_a_day_covers_that_whole_day(demo, member_client):
    """``end_date=2026-05-01`` is the end of that day (its published grammar), not its
    midnight: a day window lists the requests reported on that day (and ``end_date`` at
    1970-01-01 is not refused as 1969)."""
    case = report().case
    today = timezone.localdate(case.reported_at).isoformat()
    r = member_client("street").get(
        "/open311/v2/requests.json", {"start_date": today, "end_date": today}
    )
    assert r.status_code == 200, r.content[:300]
    assert case.number in [x["service_request_id"] for x in r.json()]


# ---------------------------------------------------------------- the phone's clock header
#: as phones sent them: the year-706 visit's clock (and its local mean time echo), 9999,
#: just before 1970 and from 2100 in UTC, epoch ms at 2100 and far past it, a negative epoch
OUT_OF_RANGE = [
    "0706-01-29T10:18:58",
    "0706-01-29T10:18:58+08:05:43",
    "0001-01-01T00:00:00+08:00",
    "9999-12-31T23:59:59+08:00",
    "1969-12-31T23:59:59.999Z",
    "1970-01-01T00:00:00+08:00",
    "1970-01-01T07:59:59",
    "2100-01-01T00:00:00Z",
    "2099-12-31T23:00:00-08:00",
    "4102444800000",
    "99999999999999",
    "253402300799999",
    "-1000",
]
#: the range's own ends, on the UTC clock, a +08:00 one, without an offset, in epoch ms
IN_RANGE = {
    "1970-01-01T00:00:00Z": datetime(1970, 1, 1, tzinfo=UTC),
    "1970-01-01T08:00:00+08:00": datetime(1970, 1, 1, tzinfo=UTC),
    "1970-01-01T08:00:00": datetime(1970, 1, 1, tzinfo=UTC),
    "0": datetime(1970, 1, 1, tzinfo=UTC),
    "2099-12-31T23:59:59.999Z": datetime(2099, 12, 31, 23, 59, 59, 999000, tzinfo=UTC),
    "4102444799999": datetime(2099, 12, 31, 23, 59, 59, 999000, tzinfo=UTC),
    "2000-01-01T09:00:00+08:00": datetime(2000, 1, 1, 1, tzinfo=UTC),
}


def test_the_clock_range_is_the_client_time_range():
    assert (clock.EARLIEST, clock.LATEST) == (fields.EARLIEST, fields.LATEST)


def test_a_device_time_out_of_range_is_a_400_naming_the_header(demo, member_client):
    client = member_client("grid1")
    for raw in OUT_OF_RANGE:
        r = client.get("/api/v1/me/", headers={"X-Device-Time": raw})
        assert r.status_code == 400, (raw, r.status_code, r.content[:300])
        assert r.json()["code"] == "bad_device_time", (raw, r.json())
        assert "X-Device-Time" in r.json()["detail"], r.json()
        assert "X-Clock-Offset-Ms" not in r and r["X-Server-Time"], raw


def test_a_device_time_in_range_still_gives_its_offset(demo, member_client):
    client = member_client("grid1")
    for raw, moment in IN_RANGE.items():
        r = client.get("/api/v1/me/", headers={"X-Device-Time": raw})
        assert r.status_code == 200, (raw, r.content[:300])
        expected = (moment - timezone.now()) / timedelta(milliseconds=1)
        assert abs(int(r["X-Clock-Offset-Ms"]) - expected) < 60_000, (raw, r["X-Clock-Offset-Ms"])


def test_a_batch_with_a_device_time_out_of_range_is_refused_and_nothing_is_stored(
    demo, member_client
):
    """The year-706 phone's visits are not "corrected" by a clock 1320 years slow."""
    client = member_client("grid1")
    household = (
        VisitTask.objects.filter(assigned_member__username="grid1").order_by("id").first().household
    )
    sent = []
    for raw in ("0706-01-29T10:18:58", "9999-12-31T23:59:59+08:00", "4102444800000"):
        item = {
            "client_uuid": str(uuid.uuid4()),
            "household": household.id,
            "client_time": (timezone.now() - timedelta(minutes=30)).isoformat(),
            "purpose": "走访",
        }
        sent.append(item["client_uuid"])
        r = client.post(
            "/api/v1/visits/batch/",
            {"visits": [item]},
            format="json",
            headers={"X-Device-Time": raw, "Idempotency-Key": str(uuid.uuid4())},
        )
        assert r.status_code == 400 and r.json()["code"] == "bad_device_time", (raw, r.content)
    assert not Visit.objects.filter(client_uuid__in=sent).exists()
