"""The API's JSON (api.renderers.JSONRenderer, issue 19) is written by orjson and is byte for
byte what DRF's renderer writes: the answers clients read, hash and cache do not change."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal

import pytest
from django.utils.translation import gettext_lazy
from rest_framework.renderers import JSONRenderer as DRFJSONRenderer
from rest_framework.test import APIClient

from api.renderers import JSONRenderer, json_bytes

pytestmark = pytest.mark.django_db

SAMPLES = [
    {"a": 1, "b": [1.5, None, True, "文字"], "c": {"d": "x\u2028y\u2029z"}},
    {"when": datetime(2026, 12, 2, 1, 2, 3, 456789, tzinfo=UTC), "day": date(2026, 12, 2)},
    {"at": time(8, 30), "span": timedelta(hours=2), "amount": Decimal("12.50")},
    {"id": uuid.UUID("12345678-1234-5678-1234-567812345678"), "label": gettext_lazy("Open")},
    {1: "an integer key"},
    [{"lon": 103.8343, "lat": 36.0611, "area": 12345.678, "zero": 0.0, "neg": -2.5}],
]


@pytest.mark.parametrize("data", SAMPLES)
def test_the_same_bytes_as_drf(data: object) -> None:
    ours = JSONRenderer().render(data, "application/json", {})
    assert ours == DRFJSONRenderer().render(data, "application/json", {})


def test_a_number_with_an_exponent_is_the_same_number() -> None:
    """The one difference: orjson writes an exponent without padding (1e-7 where the standard
    library writes 1e-07); a JSON reader reads the same number."""
    data = {"tiny": 1e-07, "big": 1e16}
    ours = JSONRenderer().render(data, "application/json", {})
    assert ours == b'{"tiny":1e-7,"big":1e+16}'
    assert json.loads(ours) == json.loads(DRFJSONRenderer().render(data, "application/json", {}))


def test_values_orjson_does_not_write_as_drf_go_to_drf() -> None:
    assert json_bytes({"when": datetime(2026, 1, 1, tzinfo=UTC)}) is None
    assert json_bytes({1: "x"}) is None
    assert json_bytes({"ok": [1, "二"]}) == '{"ok":[1,"二"]}'.encode()


def test_an_indent_asked_for_is_drf_s() -> None:
    data = {"a": [1, 2]}
    media = "application/json; indent=2"
    ours = JSONRenderer().render(data, media, {})
    assert ours == DRFJSONRenderer().render(data, media, {}) and b"\n  " in ours


def test_api_answers_are_drf_s_json(demo) -> None:
    """A list page and a detail as a client receives them: the body is what DRF's renderer
    writes for the same data."""
    from gridsvc.accounts.models import Member

    client = APIClient()
    client.force_authenticate(Member.objects.get(username="cadre1"))
    for path in ("/api/v1/cases/?page_size=20", "/api/v1/me/", "/api/v1/grids/"):
        r = client.get(path)
        assert r.status_code == 200, (path, r.content[:200])
        assert r.content == DRFJSONRenderer().render(r.data, "application/json", {}), path
