"""The benchmark city generator (fixtures/city.py) at its tiny size: counts, consistency with
the geometry and with the services that route cases and assign visits, determinism, and a
clean removal that leaves the demo street alone. Loaded by COPY with foreign-key checks on."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
from django.db import connection

from fixtures import city

TINY = city.SIZES["tiny"]


@pytest.fixture
def tiny_city(db):
    if city.loaded_size()[0] is not None:
        city.remove(log=lambda _m: None)
    result = city.load("tiny", checked=True, log=lambda _m: None)
    try:
        yield result
    finally:
        city.remove(log=lambda _m: None)


def _one(sql: str, params=None):  # type: ignore[no-untyped-def]
    with connection.cursor() as cur:
        cur.execute(sql, params or [])
        return cur.fetchone()


def test_tiny_city_counts_geometry_and_routing(tiny_city):
    from gridsvc.accounts.models import Member
    from gridsvc.cases.models import Case
    from gridsvc.crypto import keyed_hash
    from gridsvc.territory.codes import mask_id_number, mask_phone
    from gridsvc.territory.models import Building, Grid, Household, Resident
    from gridsvc.visits.models import Visit, VisitTask

    assert city.loaded_size()[0] == "tiny"
    in_city = {"unit__building__grid__community__street__code__startswith": city.CITY_PREFIX}
    assert Household.objects.filter(**in_city).count() == TINY.households == 1000
    assert (
        Resident.objects.filter(
            household__unit__building__grid__community__street__code__startswith="6299"
        ).count()
        == TINY.residents
    )
    assert Grid.objects.filter(code__startswith="6299").count() == TINY.grids
    assert Building.objects.filter(grid__code__startswith="6299").count() == TINY.buildings
    assert Case.objects.filter(street__code__startswith="6299").count() == TINY.cases
    assert Visit.objects.filter(household__in=Household.objects.filter(**in_city)).count() == (
        TINY.visits
    )
    assert Member.objects.filter(username__startswith=city.USER_PREFIX).count() > 150

    # buildings: stored grid/compound = what PostGIS derives; grids tile the community
    assert city.check_derived() == 0
    gap, overlaps = _one(
        """SELECT abs(ST_Area(c.boundary) - (SELECT sum(ST_Area(g.boundary)) FROM territory_grid g
                   WHERE g.community_id = c.id)),
                  (SELECT count(*) FROM territory_grid a JOIN territory_grid b
                   ON a.id < b.id AND a.community_id = b.community_id
                   WHERE a.community_id = c.id AND ST_Overlaps(a.boundary, b.boundary))
           FROM territory_community c WHERE c.code LIKE '6299%%'"""
    )
    assert gap < 1e-12 and overlaps == 0
    # households per grid as planned; every household has its head among its residents
    assert not Household.objects.filter(**in_city, head__isnull=True).exists()
    assert (
        _one(
            """SELECT count(*) FROM territory_household h JOIN territory_resident r ON r.id = h.head_id
               WHERE r.household_id <> h.id"""
        )[0]
        == 0
    )

    # residents pass the model's validation (GB 11643 checksum) and carry the keyed hash
    sample = Resident.objects.filter(
        household__unit__building__grid__community__street__code__startswith="6299"
    ).order_by("id")[:200]
    for r in sample:
        r.full_clean()
        assert r.id_number_hash == keyed_hash(r.id_number)
        # and the masks stored beside the encrypted values (territory.MaskField)
        assert (r.id_number_mask, r.phone_mask) == (
            mask_id_number(r.id_number),
            mask_phone(r.phone),
        )

    # cases: routed as the cases service would route them at their report time
    try:
        from gridsvc.cases.services import route
    except ImportError:  # the service may not exist yet in this checkout
        route = None
    if route is not None:
        cases = (
            Case.objects.filter(street__code__startswith="6299", escalations=0)
            .select_related("category", "household")
            .order_by("id")[:60]
        )
        for c in cases:
            r = route(
                c.category,
                None if c.household else c.location,
                household=c.household,
                flags=c.flags,
                when=c.reported_at,
            )
            assert (r.level, r.handler_id) == (c.level, c.handler_id), c.route_reason

    # visit tasks: assigned as the task generator assigns them
    from gridsvc.visits.services import Assigner, household_places, local_day_start

    tasks = list(
        VisitTask.objects.filter(household__in=Household.objects.filter(**in_city))
        .select_related("rule")
        .order_by("id")[:400]
    )
    places = household_places([t.household_id for t in tasks])
    assigners: dict = {}
    for t in tasks:
        at = local_day_start(t.period_start)
        a = assigners.get(at) or assigners.setdefault(at, Assigner.load(at))
        got = a.assign(t.rule.visitor_level, places[t.household_id])
        assert (got.member_id, got.position_id) == (t.assigned_member_id, t.assigned_position_id)
    done = [t for t in tasks if t.status == "done"]
    assert done and all(t.done_by_id for t in done)


def test_generation_is_deterministic(db):
    """Two runs with the same id bases write the same files (encrypted fields aside: Fernet
    tokens carry a random IV)."""
    with connection.cursor() as cur:
        cur.execute("SELECT 1")
    plan = _fake_plan()
    outs = []
    for _ in range(2):
        folder = Path(tempfile.mkdtemp())
        city.generate(plan, folder, workers=1, log=lambda _m: None)
        outs.append(folder)
    cols = [c for c, _k, _d in plan.specs["territory_resident"]]
    secret = {cols.index("id_number"), cols.index("phone")}
    for f in sorted(outs[0].glob("*.tsv")):
        a = f.read_text().splitlines()
        b = (outs[1] / f.name).read_text().splitlines()
        if f.name.startswith("territory_resident"):
            a = ["\t".join(x for i, x in enumerate(r.split("\t")) if i not in secret) for r in a]
            b = ["\t".join(x for i, x in enumerate(r.split("\t")) if i not in secret) for r in b]
        assert a == b, f.name


def _fake_plan() -> city.Plan:
    from django.conf import settings

    from gridsvc.cases.models import Category, FlagRule
    from gridsvc.visits.models import VisitRule

    bases = {t: 1_000_000 for t in city.counts(TINY)}
    cats = [
        (c.id, c.code, c.name, c.kind, c.effective_start_level, 1.0)
        for c in Category.objects.select_related("parent").order_by("code")
        if c.effective_start_level in city.HANDLE_DAYS
    ]
    rules = {
        r.code: (r.id, r.target_group, r.frequency, r.window_days, r.grace_days, r.visitor_level)
        for r in VisitRule.objects.order_by("code")
    }
    return city.Plan(
        size=TINY,
        bases=bases,
        specs=city.column_specs(),
        categories=cats,
        flag_levels={f.flag: f.min_level for f in FlagRule.objects.all()},
        rules=rules,
        departments=[],
        password_hash="pbkdf2_sha256$1$x$y",
        id_hash_key=settings.ID_HASH_KEY.encode(),
        field_keys=list(settings.FIELD_ENCRYPTION_KEYS),
        case_number_base=0,
    )


def test_removal_leaves_the_demo_alone(tiny_city):
    from gridsvc.territory.models import Household, Street

    demo_households = Household.objects.filter(
        unit__building__grid__community__street__code="620103003"
    ).count()
    city.remove(log=lambda _m: None)
    assert city.loaded_size()[0] is None
    assert not Street.objects.filter(code__startswith=city.CITY_PREFIX).exists()
    assert (
        Household.objects.filter(unit__building__grid__community__street__code="620103003").count()
        == demo_households
        == 1517
    )


def test_removing_bench_cases_takes_their_interpreter_calls(db):
    """A bench run's cases on the demo street with an interpreter call (翻译陪同): the call
    goes with its case (setting its case to NULL broke the call's check constraint)."""
    mark = "hooks-removal-test"

    def columns(cur, table: str) -> list[str]:  # type: ignore[no-untyped-def]
        cur.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_name = %s "
            "AND table_schema = current_schema() AND column_name <> 'id' ORDER BY ordinal_position",
            [table],
        )
        return [r[0] for r in cur.fetchall()]

    # all through remove()'s own kind of connection (committed, as a benchmark's cases are;
    # no lock held by the test's transaction)
    with city._pg_connect() as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT id FROM cases_case WHERE household_id IS NOT NULL "
            "AND reported_by_id IS NOT NULL ORDER BY id LIMIT 1"
        )
        demo_case = cur.fetchone()[0]
        cols = columns(cur, "cases_case")
        given = {"number": f"HK{demo_case:010d}", "title": f"{mark}: copy"}
        picks = ["%s" if c in given else c for c in cols]
        cur.execute(
            f"INSERT INTO cases_case ({', '.join(cols)}) SELECT {', '.join(picks)} "  # noqa: S608
            "FROM cases_case WHERE id = %s RETURNING id",
            [given[c] for c in cols if c in given] + [demo_case],
        )
        (case_id,) = cur.fetchone()
        # an interpreter called for it (请翻译随行), at the demo household it is about
        cur.execute(
            """INSERT INTO community_interpretercall (created_at, updated_at, language, case_id,
               street_id, community_id, grid_id, building_id, household_id, recorded_by_id)
               SELECT now(), now(), 'ug', id, street_id, community_id, grid_id, building_id,
                      household_id, reported_by_id FROM cases_case WHERE id = %s RETURNING id""",
            [case_id],
        )
        (call_id,) = cur.fetchone()
        cur.execute("SELECT household_id FROM cases_case WHERE id = %s", [case_id])
        (household_id,) = cur.fetchone()
        conn.commit()
    try:
        deleted = city.remove(
            log=lambda _m: None,
            city=False,
            extra_seeds=[("cases_case", "title LIKE %s", [mark + ":%"])],
        )
        assert deleted["cases_case"] == 1 and deleted["community_interpretercall"] == 1
        from gridsvc.community.models import InterpreterCall
        from gridsvc.territory.models import Household

        assert not InterpreterCall.objects.filter(pk=call_id).exists()
        assert Household.objects.filter(pk=household_id).exists()  # the demo's household stays
    finally:
        with city._pg_connect() as conn, conn.cursor() as cur:
            cur.execute("DELETE FROM community_interpretercall WHERE id = %s", [call_id])
            cur.execute("DELETE FROM cases_case WHERE id = %s", [case_id])
            conn.commit()
