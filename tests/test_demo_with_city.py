"""``make demo`` beside a benchmark city (``manage.py load_city``) in the same database.

The demo loaders pick households, grids, tasks and cases to build their story from; with a city
loaded they picked the city's too (a case reported in the city, then "verified" by the demo
street's dispatcher: NotAllowed "you may not verify this case"; visits and task times written
over the city). They must keep to the demo street and leave the city as it was loaded.
"""

from __future__ import annotations

import pytest
from django.core.management import call_command
from django.db import connection

from fixtures import city
from fixtures.demo_street import STREET_CODE

pytestmark = pytest.mark.django_db(transaction=True)


def _city_fingerprint() -> dict:
    """What the demo loaders must not change in the city: counts and the sums of its times."""
    with connection.cursor() as cur:
        cur.execute(
            """SELECT
                 (SELECT count(*) FROM cases_case c JOIN territory_street s ON s.id = c.street_id
                   WHERE s.code LIKE %(p)s),
                 (SELECT count(*) FROM cases_caseevent e JOIN cases_case c ON c.id = e.case_id
                   JOIN territory_street s ON s.id = c.street_id WHERE s.code LIKE %(p)s),
                 (SELECT count(*) || '/' || coalesce(sum(extract(epoch FROM t.updated_at)), 0)
                         || '/' || coalesce(sum(extract(epoch FROM t.created_at)), 0)
                         || '/' || string_agg(t.status, '' ORDER BY t.id)
                    FROM visits_visittask t JOIN territory_household h ON h.id = t.household_id
                    JOIN territory_unit u ON u.id = h.unit_id
                    JOIN territory_building b ON b.id = u.building_id
                    JOIN territory_grid g ON g.id = b.grid_id WHERE g.code LIKE %(p)s),
                 (SELECT count(*) || '/' || count(*) FILTER (WHERE v.far_off)
                    FROM visits_visit v JOIN territory_household h ON h.id = v.household_id
                    JOIN territory_unit u ON u.id = h.unit_id
                    JOIN territory_building b ON b.id = u.building_id
                    JOIN territory_grid g ON g.id = b.grid_id WHERE g.code LIKE %(p)s),
                 (SELECT count(*) FROM visits_dailyreport d JOIN accounts_member m
                   ON m.id = d.member_id WHERE m.username LIKE %(u)s)""",
            {"p": city.CITY_PREFIX + "%", "u": city.USER_PREFIX + "%"},
        )
        cases, events, tasks, visits, reports = cur.fetchone()
    return {"cases": cases, "events": events, "tasks": tasks, "visits": visits, "daily": reports}


def _demo_figures() -> dict:
    from gridsvc.cases.models import Case
    from gridsvc.territory.models import Household
    from gridsvc.visits.models import Visit, VisitTask

    in_demo = {"unit__building__grid__community__street__code": STREET_CODE}
    return {
        "households": Household.objects.filter(**in_demo).count(),
        "cases": Case.objects.filter(street__code=STREET_CODE).count(),
        "tasks": VisitTask.objects.filter(
            household__in=Household.objects.filter(**in_demo)
        ).count(),
        "visits": Visit.objects.filter(household__in=Household.objects.filter(**in_demo)).count(),
    }


def test_demo_loads_and_reloads_beside_a_tiny_city(committed_demo):
    # the demo as it loads alone (the reference: as the session's template loaded it), then a
    # database with the city first
    alone = _demo_figures()
    assert alone["households"] == 1517 and alone["cases"] == 260
    call_command("flush", interactive=False, verbosity=0)
    city.load("tiny", log=lambda _m: None)
    try:
        assert city.loaded_size()[0] == "tiny"
        before = _city_fingerprint()
        assert before["cases"] == city.SIZES["tiny"].cases

        call_command("load_demo", verbosity=0)  # `make demo` on this database
        assert _demo_figures() == alone  # the same demo as without the city
        assert _city_fingerprint() == before  # and the city as it was loaded
        assert city.loaded_size()[0] == "tiny"

        # a second `make demo` keeps both
        call_command("load_demo", verbosity=0)
        assert _demo_figures() == alone
        assert _city_fingerprint() == before
        # (--reset, which empties the database and the city with it, is not repeated here: a
        # third whole demo load would double this test's cost for a documented flush)
    finally:
        # (the flush after this test empties the database; ``committed_demo`` brings the demo
        # back for the next transactional test)
        if city.loaded_size()[0] is not None:
            city.remove(log=lambda _m: None)
