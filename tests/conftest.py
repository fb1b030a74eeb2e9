"""Test fixtures: a real PostGIS test database with the demo street loaded once per run.

Each test runs inside a transaction that is rolled back, so tests may change the demo data
freely. Helpers here build small extra territories for edge cases.
"""

from __future__ import annotations

import pytest
from django.contrib.gis.geos import MultiPolygon, Polygon
from rest_framework.test import APIClient


@pytest.fixture(scope="session")
def django_db_setup(django_db_setup, django_db_blocker):  # noqa: F811 - extends pytest-django's
    from django.core.management import call_command

    with django_db_blocker.unblock():
        call_command("load_demo", verbosity=0)


@pytest.fixture
def committed_demo(transactional_db):
    """For transactional tests (live server, real worker): make sure the demo street is in the
    database (an earlier transactional test may have flushed it). Slow: ~3 s when reloading."""
    from django.core.management import call_command

    call_command("load_demo", verbosity=0)


def square(x0: float, y0: float, x1: float, y1: float) -> MultiPolygon:
    """A WGS84 rectangle as a MultiPolygon."""
    return MultiPolygon(Polygon(((x0, y0), (x1, y0), (x1, y1), (x0, y1), (x0, y0))), srid=4326)


@pytest.fixture
def demo(db):
    """Handles on the demo street's main objects."""
    from gridsvc.territory.models import Community, Grid, Street

    street = Street.objects.get(code="620103003")
    community = Community.objects.get(code="620103003012")
    grids = list(Grid.objects.filter(community=community).order_by("code"))
    return type("Demo", (), {"street": street, "community": community, "grids": grids})


@pytest.fixture
def member_client(db):
    """``member_client("grid1")`` → an APIClient logged in as that demo member."""

    def make(username: str) -> APIClient:
        from gridsvc.accounts.models import Member

        client = APIClient()
        client.force_authenticate(Member.objects.get(username=username))
        return client

    return make
