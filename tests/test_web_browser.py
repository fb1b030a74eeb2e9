"""The street office's web page in a real browser (Debian's Chromium driven by Playwright).

One test on purpose (each live-server test flushes the database, and the next one gets the
demo street back as a fresh copy of the session's template: tests/conftest.py), with two browser sessions: (1) at tablet width in English: a wrong password, the
panel under the map, visits and the monthly charts; (2) at laptop width: the heatmap draws
(pixels checked, screenshots in test-artifacts/), the category filter, a case's walked chain
and timeline, dispatching an overdue case through the REST API with If-Match until it leaves
the queue, a stale ETag shown as 412 then retried. Further sessions (issue 22 and the page
parts of issues 20-21): phone width, each role's landing view and the ethnic desk's sign-off,
forced API/tile/schema failures, search, exports, print, live updates, a 412 race, the
民族团结 and 民生服务 tabs. No unexpected console errors in any; axe-core on the main views.
A second test (issue 22 item 7): two dispatchers, B's change reaching A's page by polling.
"""

from __future__ import annotations

from contextlib import ExitStack, contextmanager
from pathlib import Path

import pytest

from tests.browser import (
    ARTIFACTS,
    CANVAS_COLOURS_JS,
    CHROMIUM_ARGS,
    HEAT_PIXELS_JS,
    chromium_path,
    close_connections_beside_playwright,
    login,
    page_in,
)
from tests.browser import browser_page as own_browser_page

pytestmark = [pytest.mark.browser]

READY = "body[data-ready='1']"
# axe-core from npm (a devDependency in package.json, installed by scripts/build_web.sh)
AXE = Path(__file__).resolve().parent.parent / "node_modules" / "axe-core" / "axe.min.js"
AXE_SERIOUS_JS = """async () => {
  const r = await axe.run(document, { resultTypes: ["violations"] });
  return r.violations.filter((v) => ["serious", "critical"].includes(v.impact))
    .map((v) => `${v.id} (${v.nodes.length}): ${v.nodes.slice(0, 3).map((n) => n.target.join(" ")).join(" | ")}`);
}"""


AXE_FOUND: list[str] = []
# the map has stopped moving and drawn its tiles (for screenshots)
MAP_SETTLED_JS = """() => { const m = window.gridsvc.state.map;
  return !m.isMoving() && m.areTilesLoaded() && document.body.dataset.busy === '0'; }"""
# features of each named map layer drawn in the current view
RENDERED_JS = """(layers) => Object.fromEntries(layers.map((l) =>
  [l, window.gridsvc.state.map.queryRenderedFeatures({ layers: [l] }).length]))"""


def assert_accessible(page, where: str, found: list[str]) -> None:
    """Issue 22 item 12: axe-core's serious or critical violations in the page as shown are
    added to ``found`` (the test asserts it empty at the end, so one run reports every view).
    The script is evaluated through DevTools (the page's CSP allows no injected script tag)."""
    assert AXE.exists(), "axe-core missing: run scripts/build_web.sh"
    if not page.evaluate("() => !!window.axe"):
        page.evaluate(AXE.read_text(encoding="utf-8") + "\n;undefined")
    found.extend(f"{where}: {v}" for v in page.evaluate(AXE_SERIOUS_JS))


def wait_ready(page, timeout: int = 30_000) -> None:  # type: ignore[no-untyped-def]
    page.wait_for_selector(READY, timeout=timeout)


def begin_login(page, url: str, username: str, next_page: str = "/") -> None:  # type: ignore[no-untyped-def]
    """Sign in and go on without waiting for the page to be ready (:func:`wait_ready` before
    checking it): its load runs while another session is checked."""
    from urllib.parse import quote

    page.goto(f"{url}/login/?next={quote(next_page, safe='/')}")
    page.fill("#id_username", username)
    page.fill("#id_password", "gridsvc-demo")
    page.click("button[type=submit]")


@contextmanager
def side_by_side(url: str, sessions: list[tuple[str, int, int]]):  # type: ignore[no-untyped-def]
    """Pages (page, errors) of several sessions (username, width, height) signed in at once:
    their loads run side by side in the browser, each waited for when it is checked."""
    with ExitStack() as stack:
        opened = [stack.enter_context(browser_page(w, h)) for _, w, h in sessions]
        for (page, _errors), (username, _w, _h) in zip(opened, sessions, strict=True):
            begin_login(page, url, username)
        yield opened


#: the one Chromium of a test's sessions (see :func:`one_browser`) and the OpenAPI schema as
#: the server first answered it in that test
SHARED: dict = {}


@contextmanager
def one_browser():  # type: ignore[no-untyped-def]
    """One Chromium for all of a test's browser sessions, each session a context of its own
    (its own cookies and storage): a Chromium started per session cost 1-2 s each. The page
    asks the OpenAPI schema's paths (/api/schema/paths/) at every load and waits for them;
    they are the same for every caller (public), so each context is answered the server's
    first answer of the test, as a browser cache would."""
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as pw:
        SHARED["browser"] = pw.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS)
        try:
            yield
        finally:
            close_connections_beside_playwright()
            SHARED.pop("browser").close()
            SHARED.pop("schema", None)


def schema_once(route) -> None:  # type: ignore[no-untyped-def]
    """Answer the page's schema request with the server's first answer of the test."""
    key = route.request.url
    if key not in SHARED.setdefault("schema", {}):
        answer = route.fetch()
        if answer.status != 200:
            route.fulfill(response=answer)
            return
        SHARED["schema"][key] = {"status": 200, "headers": answer.headers, "body": answer.body()}
    route.fulfill(**SHARED["schema"][key])


@contextmanager
def browser_page(width: int = 1400, height: int = 900):  # type: ignore[no-untyped-def]
    """A fresh page (page, errors): a new context of the test's one Chromium when
    :func:`one_browser` is open, else a Chromium of its own."""
    if "browser" not in SHARED:
        with own_browser_page(width, height) as opened:
            yield opened
        return
    with page_in(SHARED["browser"], width, height) as (page, errors):
        page.context.route("**/api/schema/**", schema_once)  # a page's own route goes first
        yield page, errors


def test_street_office_page(live_server, committed_demo, monkeypatch):
    """One test, several browser sessions in one Chromium: each live-server test flushes the
    database and the next one gets the demo street back, so the sessions share one copy."""
    # The ORM is used beside Playwright's sync API, whose event loop runs in this thread.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    # Chromium is installed by scripts/setup.sh: a missing one fails, never skips.
    assert chromium_path(), "chromium missing: run scripts/setup.sh"
    with one_browser():
        tablet_in_english(live_server.url)  # read-only: before the dispatch changes cases
        venue_tasks_due()  # before the street desk's session that opens 民族团结
        # grid1's, the ethnic desk's and the street desk's phone pages load side by side
        sessions = [("grid1", 1400, 900), ("ethnic", 1400, 900), ("street", 390, 844)]
        with side_by_side(live_server.url, sessions) as (grid1, ethnic, phone):
            roles_land_on_their_work(grid1, ethnic)
            phone_width(*phone)
        cadre_reviews(live_server.url)
        with browser_page() as (page, errors):  # the street desk at laptop width, one page
            asked: list[str] = []
            page.on("request", lambda r: asked.append(r.url))
            laptop_heatmap_filter_and_dispatch(page, live_server.url, errors)
            failures_search_exports_and_race(page, live_server.url, errors)
        # which endpoints exist: their list (a few kB), never the 4-5 MB OpenAPI schema
        assert any("/api/schema/paths/" in u for u in asked)
        assert not [u for u in asked if "/api/schema/?" in u or u.endswith("/api/schema/")]
    assert AXE_FOUND == [], "\n".join(AXE_FOUND)


def test_live_updates_between_two_dispatchers(live_server, committed_demo, monkeypatch):
    """Issue 22 item 7: two street dispatchers, A with a case open. B reassigns it in B's page;
    A's next poll (``?updated_since=`` from the last server time A saw) brings the new handler
    into A's card, queue and pins without a reload, with a quiet "已被他人更新" note naming the
    change. Then B sets a deadline while A is typing in the card's form: the form is kept as
    typed and the note says what changed."""
    from datetime import timedelta

    from django.utils import timezone

    from gridsvc.accounts.models import Member
    from gridsvc.cases import services
    from gridsvc.cases.models import Case

    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    assert chromium_path(), "chromium missing: run scripts/setup.sh"
    url = live_server.url
    with browser_page() as (page, errors):
        login(page, url, "street")
        wait_ready(page)
        page.evaluate("window.__notReloaded = true")
        row = page.locator("#queue li:has([data-action=reassign])").first
        case_id = int(row.get_attribute("data-case"))
        row.locator(".title button").click()
        card = page.locator(f"#case-detail[data-case='{case_id}'][data-state=ready]")
        card.wait_for()
        before = Case.objects.select_related("handler").get(pk=case_id)

        # B, another dispatcher in another browser session, reassigns the case in B's page
        other = page.context.browser.new_context(
            viewport={"width": 1400, "height": 900}, locale="zh-CN"
        )
        try:
            b = other.new_page()
            login(b, url, "street2")
            b_row = b.locator(f"#queue li[data-case='{case_id}']")
            b_row.locator("[data-action=reassign]").click()
            b_row.locator("select[name=member][data-loaded='1']").wait_for()
            b_row.locator("form[data-form=assign] button[type=submit]").click()
            b.wait_for_function("() => !document.getElementById('toast').hidden", timeout=10_000)
            assert "改派" in b.locator("#toast").inner_text(), (
                b.locator("#toast").inner_text(),
                b_row.locator(".action-error").all_inner_texts(),
            )
        finally:
            other.close()
        after = Case.objects.select_related("handler").get(pk=case_id)
        assert after.handler_id != before.handler_id and after.version > before.version
        new_name = after.handler.display_name or after.handler.username

        # A's poll brings the change: card redrawn with the new handler and a quiet note
        page.evaluate("window.gridsvc.poll()")
        note = page.locator(f"#case-detail .live-note[data-live-note='{after.version}']")
        note.wait_for(timeout=10_000)
        assert "已被他人更新" in note.inner_text()
        assert new_name in note.locator("[data-field=handler_l]").inner_text()
        assert note.get_attribute("role") == "status"
        assert new_name in page.locator("#case-detail .meta").inner_text()
        shown = page.evaluate(
            f"window.gridsvc.state.cases.find((c) => c.id === {case_id})?.handler_name"
        )
        assert shown in (None, new_name)  # in the pins when reported inside the window
        queued = page.locator(f"#queue li[data-case='{case_id}'] .meta")
        if queued.count():
            assert new_name in queued.inner_text()
        assert (
            page.locator("#toast").is_hidden() or "改派" not in page.locator("#toast").inner_text()
        )

        # A starts setting a deadline in the card; B (here through the services) sets another:
        # A's form is kept as typed, the note says the deadline changed
        page.locator("#case-detail [data-action=set_deadline]").click()
        page.locator("#case-detail input[name=note]").fill("正在填写")
        new_due = timezone.now() + timedelta(days=8)
        services.act(
            case_id,
            "set_deadline",
            Member.objects.get(username="street2"),
            data={"due_at": new_due.isoformat()},
        )
        version = Case.objects.get(pk=case_id).version
        page.evaluate("window.gridsvc.poll()")
        kept = page.locator(f"#case-detail .live-note[data-live-note='{version}'][data-kept='1']")
        kept.wait_for(timeout=10_000)
        assert kept.locator("[data-field=due_l]").count() == 1
        assert page.locator("#case-detail input[name=note]").input_value() == "正在填写"
        assert page.evaluate("window.__notReloaded === true")
        found: list[str] = []
        assert_accessible(page, "live update note", found)
        assert found == [], "\n".join(found)
        assert errors == []


def laptop_heatmap_filter_and_dispatch(page, url: str, errors: list[str]) -> None:  # type: ignore[no-untyped-def]
    """The street desk at laptop width: the heatmap (pixels), the category filter, stacked
    pins, a case's walked chain and timeline, a dispatch with If-Match, a 412 then retried."""
    from gridsvc.accounts.models import Member
    from gridsvc.cases import services
    from gridsvc.cases.models import Case

    actions: list[tuple[str, str | None]] = []
    page.on(
        "request",
        lambda r: (
            actions.append((r.url, r.headers.get("if-match"))) if "/actions/" in r.url else None
        ),
    )
    login(page, url, "street")
    wait_ready(page)
    assert_accessible(page, "dispatch queue", AXE_FOUND)
    # (13) the first meaningful map (territory drawn), reported as a figure, not asserted
    first_map = page.locator("body").get_attribute("data-first-map-ms")
    print(f"\n[web] first meaningful map {first_map} ms after navigation (laptop, loopback)")
    # (8) grid names on the map and the case pins clustered with their counts
    shown = page.evaluate(RENDERED_JS, ["grid-labels", "pin-clusters", "pin-cluster-count"])
    assert shown["grid-labels"] >= 3 and shown["pin-clusters"] > 0, shown
    assert shown["pin-cluster-count"] == shown["pin-clusters"], shown

    # The heatmap: cases counted, warm pixels on the canvas once pins and grids are hidden.
    total = int(page.locator("#map").get_attribute("data-heat-total"))
    assert total > 100, total
    page.uncheck("#show-pins")
    page.uncheck("#show-choropleth")
    page.wait_for_function(f"({HEAT_PIXELS_JS})() > 2000", timeout=10_000)
    assert page.evaluate(CANVAS_COLOURS_JS) > 3, "the map canvas is blank"
    page.screenshot(path=str(ARTIFACTS / "web-heatmap.png"))
    page.check("#show-pins")
    page.check("#show-choropleth")

    # Filter by category: fewer cases, all of that category.
    page.select_option("#category", "hazard.fire")
    wait_ready(page)
    fire = int(page.locator("#map").get_attribute("data-heat-total"))
    assert 0 < fire < total
    categories = page.evaluate("window.gridsvc.state.cases.map((c) => c.category_code)")
    assert categories and set(categories) <= {"hazard.fire"}
    page.select_option("#category", "")
    wait_ready(page)

    # (8) a building with several cases: its stacked pins open as one list
    spot = page.evaluate(
        """() => { const m = new Map();
          for (const c of window.gridsvc.state.cases) if (c.lon !== null) {
            const k = c.lon + ',' + c.lat; m.set(k, (m.get(k) || 0) + 1); }
          const best = [...m].sort((a, b) => b[1] - a[1])[0];
          return { lon: Number(best[0].split(',')[0]), lat: Number(best[0].split(',')[1]), n: best[1] }; }"""
    )
    assert spot["n"] >= 2, spot
    view = page.evaluate(
        "() => { const m = window.gridsvc.state.map; return { center: m.getCenter().toArray(), zoom: m.getZoom() }; }"
    )
    # zoom to the spot; the pixel once the map is idle (listened for before moving)
    point = page.evaluate(
        """(s) => new Promise((resolve) => { const m = window.gridsvc.state.map;
          const done = () => resolve(m.project([s.lon, s.lat]));
          m.once('idle', done); setTimeout(done, 10000);
          m.jumpTo({ center: [s.lon, s.lat], zoom: 18 }); })""",
        spot,
    )
    # (8) close up: buildings named, every case its own pin (no clusters)
    near = page.evaluate(RENDERED_JS, ["building-labels", "pin-clusters", "pins"])
    assert near["building-labels"] > 0 and near["pin-clusters"] == 0, near
    assert near["pins"] >= spot["n"], near
    box = page.locator("#map canvas").bounding_box()
    page.mouse.click(box["x"] + point["x"], box["y"] + point["y"])
    stacked = page.locator(".popup.stacked")
    stacked.wait_for()
    assert stacked.locator("li").count() >= spot["n"]
    page.keyboard.press("Escape")
    page.evaluate("() => document.querySelectorAll('.maplibregl-popup').forEach((p) => p.remove())")
    # (12) the same cases without a mouse: focus the map, Enter lists those near its centre
    page.locator("#map canvas").focus()
    page.keyboard.press("Enter")
    listed = page.locator(".popup[data-keyboard] li")
    listed.first.wait_for()
    assert listed.count() >= spot["n"]
    assert page.evaluate("document.activeElement.closest('.popup') !== null")
    page.keyboard.press("Escape")
    page.evaluate("() => document.querySelectorAll('.maplibregl-popup').forEach((p) => p.remove())")
    # (nothing returned: jumpTo's answer is the map itself, which Playwright would walk and
    # serialise whole, 7-14 s)
    page.evaluate("(v) => { window.gridsvc.state.map.jumpTo(v); }", view)

    # The overdue queue: open a case that has no red card, see its walked chain and
    # timeline, reassign it from there, and see it leave the queue.
    queue = page.locator("#queue li")
    queue.first.wait_for()
    target = page.locator("#queue li:not(.card-red)").first
    case_id = int(target.get_attribute("data-case"))
    case = Case.objects.get(pk=case_id)
    target.locator(".title button").click()
    detail = page.locator(f"#case-detail[data-case='{case_id}']")
    detail.wait_for()
    assert detail.locator(".chain li").count() >= 3
    assert detail.locator(".timeline li").count() >= 2
    # the route reason in Chinese (the server writes "…: starts at 楼长; → 楼长 范娟")
    reason = detail.locator(".route-reason").inner_text()
    assert case.route_reason and case.category.name in reason
    assert "starts at" not in reason and "skipped" not in reason
    assert_accessible(page, "case detail", AXE_FOUND)
    detail.locator("[data-action=reassign]").click()
    select = detail.locator("select[name=member][data-loaded='1']")
    select.wait_for()
    member_id = int(select.locator("option").first.get_attribute("value"))
    # candidates: the case's own level first (not 单元长 first), each with its workload
    first = select.locator("option").first.inner_text()
    assert "在办" in first
    if page.evaluate("window.gridsvc.state.paths.has('/api/v1/cases/{id}/candidates/')"):
        assert select.get_attribute("data-source") == "server"  # ordered by the server
    assert member_id != case.handler_id
    detail.locator("input[name=note]").fill("街道改派 browser test")
    detail.locator("form[data-form=assign] button[type=submit]").click()
    page.wait_for_selector("#case-detail .timeline li[data-kind=assign] >> text=街道改派")
    case.refresh_from_db()
    assert case.status == "assigned" and case.handler_id == member_id
    # assign, then the new deadline, each with the ETag of the case as the page knew it
    # (GZipMiddleware makes ETags weak: W/"…")
    sent = [(url.rsplit("/actions/", 1)[1], tag.removeprefix("W/")) for url, tag in actions]
    v = case.version
    assert sent[-2:] == [
        ("assign/", f'"case-{case_id}-v{v - 2}"'),
        ("set_deadline/", f'"case-{case_id}-v{v - 1}"'),
    ]
    page.click(".tabs [data-tab=queue]")
    page.wait_for_selector(f"#queue li[data-case='{case_id}']", state="detached")

    # Someone else changes the next case meanwhile: the page shows 412, then retries with
    # the fresh ETag and the case leaves the queue.
    other = page.locator("#queue li:not(.card-red)").first
    other_id = int(other.get_attribute("data-case"))
    services.act(other_id, "comment", Member.objects.get(username="street2"), note="meanwhile")
    other.locator("[data-action=set_deadline]").click()
    other.locator("form[data-form=set_deadline] button[type=submit]").click()
    error = other.locator(".action-error[data-status='412']")
    error.wait_for()
    assert "412" in error.inner_text()
    other.locator("form[data-form=set_deadline] button[type=submit]").click()
    page.wait_for_selector(f"#queue li[data-case='{other_id}']", state="detached")
    assert Case.objects.get(pk=other_id).due_at > case.reported_at
    page.screenshot(path=str(ARTIFACTS / "web-dispatch.png"))

    assert [e for e in errors if "412" not in e] == []


def cadre_reviews(url: str) -> None:
    """Issue 22 item 5 and issue 21 on the page: a community cadre lands as a cadre (their own
    work) and reviews a checked application in 民生服务 (推荐, the opinion asked first)."""
    from decimal import Decimal

    from gridsvc.accounts.models import Member
    from gridsvc.assistance import services as assist
    from gridsvc.assistance.models import Application
    from gridsvc.territory.models import Household

    cadre = Member.objects.get(username="cadre1")
    busy = Application.objects.filter(kind="job").values("household")
    households = Household.objects.filter(unit__building__grid__isnull=False).exclude(pk__in=busy)
    household = next(h for h in households[:300] if cadre.pk in assist.actors_of(h, "review"))
    actor = lambda stage: Member.objects.get(pk=assist.actors_of(household, stage)[0])  # noqa: E731
    app = assist.submit(actor("submit"), household, "job", reason="失业,求职登记").application
    assist.check(
        actor("check"), app.pk, members_count=2, monthly_income=Decimal("0"), documents=["身份证"]
    )
    with browser_page() as (page, errors):
        login(page, url, "cadre1")
        assert page.locator("body").get_attribute("data-role") == "cadre"
        assert page.locator(".queue-filters [data-queue=unrouted]").is_hidden()
        page.click(".tabs [data-tab=services]")
        item = page.locator(
            f"#applications details[data-stage=checked] li[data-application='{app.pk}']"
        )
        item.wait_for()
        assert item.locator("[data-action=approve]").count() == 0  # the street decides, not them
        item.locator("[data-action=recommend]").click()
        assert item.locator(".action-error").is_visible()
        item.locator("input[name=reason]").fill("经入户核查,情况属实")
        item.locator("[data-action=recommend]").click()
        page.wait_for_selector(
            f"#applications details[data-stage=reviewed] li[data-application='{app.pk}']"
        )
        app.refresh_from_db()
        assert (
            app.status == "reviewed" and app.recommended and app.review_opinion.startswith("经入户")
        )
        district_officer(page, url)
        assert errors == []


def district_officer(page, url: str) -> None:
    """Issue 20 item 9 on the page (in the cadre's browser, logged in again): the district's 创建
    office lands on its district, not an empty map: the outline and its streets drawn, the
    streets side by side with their figures and where their reports stand."""
    from gridsvc.territory.models import Street

    page.context.clear_cookies()
    login(page, url, "district")
    assert page.locator("body").get_attribute("data-role") == "district"
    assert page.locator(".tabs [data-tab=district]").get_attribute("aria-selected") == "true"
    assert page.locator(".tabs [data-tab=queue]").is_hidden()
    page.wait_for_selector("#district-streets[data-state=ready]")
    streets = Street.objects.filter(district__code="620103").order_by("code")
    heads = page.locator("#district-streets th[data-street]").all_inner_texts()
    assert heads == [s.name for s in streets], heads
    assert page.locator("#district-streets tr[data-row=plan] [data-report]").count() == len(heads)
    assert page.locator("#district-streets tr[data-figure=activities] td").count() == len(heads)
    page.wait_for_function(MAP_SETTLED_JS, timeout=10_000)
    drawn = page.evaluate(RENDERED_JS, ["district-line", "street-line"])
    assert drawn["district-line"] > 0 and drawn["street-line"] > 0, drawn
    assert_accessible(page, "区 (district office)", AXE_FOUND)
    page.screenshot(path=str(ARTIFACTS / "web-district.png"))


def phone_width(page, errors: list[str]) -> None:  # type: ignore[no-untyped-def]
    """Issue 22 item 11: at phone width (the street desk signed in at 390 px) the header's
    filters and the legend fold behind a button each, and choosing a case scrolls to its
    details."""
    wait_ready(page, timeout=60_000)
    assert page.locator("#filters").is_hidden() and page.locator("#legend").is_hidden()
    page.click("#filters-toggle")
    assert page.locator("#category").is_visible()
    assert page.locator("#filters-toggle").get_attribute("aria-expanded") == "true"
    page.click("#legend-toggle")
    assert page.locator("#legend").is_visible()
    page.click("#legend-toggle")
    page.locator("#queue li .title button").first.click()
    page.wait_for_selector("#case-detail[data-state=ready]")
    page.wait_for_function(
        "() => { const r = document.querySelector('#case-detail').getBoundingClientRect();"
        " return r.top > -20 && r.top < innerHeight / 2; }",
        timeout=5_000,
    )
    page.screenshot(path=str(ARTIFACTS / "web-phone.png"))
    assert errors == []


def roles_land_on_their_work(grid1: tuple, ethnic: tuple) -> None:
    """Issue 22 item 5: a grid member lands on their own cases and territory without the
    dispatch actions; the ethnic-affairs desk on the flagged cases, also without them.
    ``grid1`` and ``ethnic``: (page, errors) of each, signed in."""
    from rest_framework.test import APIClient

    from gridsvc.accounts.models import Member
    from gridsvc.cases.models import OPEN_STATUSES, Case

    # grid1 holds no open case in the demo: lands on the first of its lists with work (超期,
    # then 关注), as the API answers them to grid1; none with work: its own (empty) list
    mine = Case.objects.filter(handler__username="grid1", status__in=OPEN_STATUSES).exists()
    api = APIClient()
    api.force_authenticate(Member.objects.get(username="grid1"))
    with_work = [
        kind
        for kind in ("overdue", "flagged")
        if (answer := api.get(f"/api/v1/dispatch/queue/?kind={kind}").json())
        and (answer if isinstance(answer, list) else answer.get("results"))
    ]
    landing = "mine" if mine or not with_work else with_work[0]
    for (page, errors), (username, role, queue) in (
        (grid1, ("grid1", "member", landing)),
        (ethnic, ("ethnic", "ethnic", "flagged")),
    ):
        wait_ready(page, timeout=60_000)
        assert page.locator("body").get_attribute("data-role") == role
        assert page.locator(".queue-filters [data-queue=mine]").is_visible()
        assert page.locator(f".queue-filters button.active[data-queue={queue}]").count() == 1
        assert page.locator(".queue-filters [data-queue=unrouted]").is_hidden()
        assert page.locator("#queue [data-action]").count() == 0
        # (6) 催报 is the managers': not offered where the server would refuse it
        page.click(".tabs [data-tab=visits]")
        page.wait_for_function("() => document.querySelector('#missing-count').textContent !== ''")
        assert page.locator("#missing button.chase, #screening button.chase").count() == 0
        page.click(".tabs [data-tab=queue]")
        if username == "grid1":
            grids = page.evaluate("window.gridsvc.state.grids.features.length")
            assert 1 <= grids < 7, grids
            # (issue 21) a grid member sees the applications, with no step to take
            page.click(".tabs [data-tab=services]")
            page.wait_for_selector("#applications[data-state=ready]")
            assert page.locator("#tab-services [data-action]").count() == 0
            page.click(".tabs [data-tab=queue]")
            page.screenshot(path=str(ARTIFACTS / "web-grid-member.png"))
        else:
            ethnic_case_sign_off(page)
        assert errors == []


def ethnic_case_sign_off(page) -> None:
    """Issue 22 item 5: the ethnic-affairs desk signs off an ethnic case from the page (尚未稳定
    asks for a reason first, then 确认稳定), the standing sign-off shown; no dispatch action."""
    from gridsvc.cases.models import OPEN_STATUSES, Case
    from gridsvc.community.models import SignOff

    case = (
        Case.objects.filter(ethnic_religious=True, status__in=OPEN_STATUSES).order_by("pk").first()
    )
    if case is None:  # the demo's own are all closed: one reported now
        from gridsvc.cases import services
        from gridsvc.cases.models import Category
        from gridsvc.territory.models import Household

        household = Household.objects.filter(unit__building__grid__isnull=False).order_by("pk")[0]
        case = services.report_case(
            reporter=None,
            category=Category.objects.get(code="ethnic"),
            title="邻里因宗教习俗发生口角 browser test",
            household=household,
            flags=["ethnic_religious"],
        ).case
    before = SignOff.objects.filter(case=case).count()
    page.evaluate(f"window.gridsvc.showCase({case.pk})")
    area = page.locator(f"#case-detail[data-case='{case.pk}'] .sign-off")
    area.locator("[data-action=sign_off_refuse]").click()
    assert area.locator(".action-error").is_visible()  # a reason first, nothing sent
    assert SignOff.objects.filter(case=case).count() == before
    area.locator("input[name=sign_note]").fill("双方仍有分歧,继续关注")
    area.locator("[data-action=sign_off_refuse]").click()
    page.wait_for_selector("#case-detail .sign-off[data-sign-off=refused]")
    area.locator("[data-action=sign_off]").click()
    page.wait_for_selector("#case-detail .sign-off[data-sign-off=confirmed]")
    assert "会签" in page.locator("#toast").inner_text()
    added = SignOff.objects.filter(case=case).order_by("id")[before:]
    assert [s.confirmed for s in added] == [False, True]
    assert page.locator("#case-detail .actions [data-action=reassign]").count() == 0


def failures_search_exports_and_race(page, url: str, errors: list[str]) -> None:  # type: ignore[no-untyped-def]
    """Issue 22 items 1-4, in the street desk's page: forced API failures show an error with a
    retry (never "no cases"), search by case number, the place filter and sorting of the
    queue, export links, the printable case sheet, and a 412 race that shows the other
    dispatcher's new deadline."""
    from datetime import timedelta

    from django.utils import timezone

    from gridsvc.accounts.models import Member
    from gridsvc.cases import services
    from gridsvc.cases.models import Case

    # (1) the queue API answers 500: an error with a retry, not "没有案件"; then it recovers
    fail = {"on": True}

    def queue_route(route):
        if fail["on"]:
            route.fulfill(status=500, content_type="application/json", body='{"detail":"boom"}')
        else:
            route.continue_()

    page.route("**/api/v1/dispatch/queue/**", queue_route)
    page.route(
        "**/api/v1/heatmap/cases/**",
        lambda route: route.fulfill(status=503, content_type="application/json", body="{}"),
    )
    page.reload()
    wait_ready(page)
    state = page.locator("#queue-state")
    assert state.get_attribute("data-state") == "error"
    assert "500" in state.inner_text() and "没有案件" not in state.inner_text()
    assert page.locator("[data-count=overdue]").inner_text() == "!"
    assert "503" in page.locator("#heat-info").inner_text()
    assert page.locator("#heat-info button.retry").is_visible()
    fail["on"] = False
    page.click("#queue-retry")
    page.locator("#queue li").first.wait_for()
    assert state.get_attribute("data-state") == "ready"
    page.unroute("**/api/v1/heatmap/cases/**")
    page.locator("#heat-info button.retry").click()
    page.wait_for_function(
        "() => Number(document.querySelector('#map').dataset.heatTotal) > 0", timeout=10_000
    )

    # (1) the territory tiles fail: a banner says so (not a silently empty map), retry
    page.route("**/tiles/**", lambda route: route.fulfill(status=500, body="tile error"))
    page.reload()
    page.wait_for_selector("#banner:not([hidden])", timeout=30_000)
    assert "瓦片" in page.locator("#banner").inner_text()
    assert page.locator("#map").get_attribute("data-tiles") == "error"
    page.unroute("**/tiles/**")
    wait_ready(page)
    page.click("#banner-retry")
    assert page.locator("#banner").is_hidden()

    # (13) the map does not wait for the OpenAPI schema: held back, the territory is drawn
    held: list = []
    page.route("**/api/schema/**", lambda route: held.append(route))
    page.reload()
    page.wait_for_selector("body[data-first-map-ms]", timeout=30_000)
    assert held, "the schema was not asked for"
    assert page.evaluate("window.gridsvc.state.paths.size") == 0  # still not arrived
    assert page.evaluate(RENDERED_JS, ["grid-line"])["grid-line"] > 0
    page.unroute("**/api/schema/**")
    held[0].continue_()
    wait_ready(page)

    # (1) the schema fails: a banner with a retry, the queue says error, not empty
    page.route("**/api/schema/**", lambda route: route.fulfill(status=502, body="bad gateway"))
    page.reload()
    page.wait_for_selector("#banner:not([hidden])", timeout=30_000)
    assert "502" in page.locator("#banner").inner_text()
    assert page.locator("#queue-state").get_attribute("data-state") == "error"
    assert "0 件" not in page.locator("#heat-info").inner_text()
    page.unroute("**/api/schema/**")
    page.click("#banner-retry")
    wait_ready(page)
    page.locator("#queue li").first.wait_for()

    # (8) layers that do not muddle: the choropleth off by default, places drawn
    assert not page.locator("#show-choropleth").is_checked()
    assert (
        page.evaluate("window.gridsvc.state.map.getLayoutProperty('choropleth', 'visibility')")
        == "none"
    )
    assert int(page.locator("#places-count").inner_text().strip("()")) > 0

    # (3) sort by age: oldest first; place filter: only that grid's cases, counts follow
    page.select_option("#queue-sort", "age")
    times = page.evaluate(
        "[...document.querySelectorAll('#queue li')].map((li) => "
        "window.gridsvc.state.queueRows.get(Number(li.dataset.case)).reported_at)"
    )
    assert times == sorted(times) and len(times) > 1
    before = int(page.locator("[data-count=overdue]").inner_text())
    grid_value = page.locator("#grid-filter option[value^='g:']").first.get_attribute("value")
    page.select_option("#grid-filter", grid_value)
    grids = page.evaluate(
        "[...document.querySelectorAll('#queue li')].map((li) => "
        "window.gridsvc.state.queueRows.get(Number(li.dataset.case)).grid)"
    )
    assert set(grids) <= {int(grid_value[2:])}
    assert int(page.locator("[data-count=overdue]").inner_text()) <= before
    page.select_option("#grid-filter", "")

    # (3) search by case number
    case = Case.objects.filter(grid__isnull=False).order_by("-pk").first()
    page.fill("#search", case.number)
    page.press("#search", "Enter")
    page.wait_for_selector(f"#queue[data-kind=search] li[data-case='{case.pk}']")
    assert page.locator("#queue li").count() == 1
    assert page.locator("#queue-state").get_attribute("data-state") == "results"
    page.fill("#search", "不存在的字样zzz")
    page.press("#search", "Enter")
    page.wait_for_selector("#queue-state[data-state=empty]")
    assert "不存在的字样zzz" in page.locator("#queue-state").inner_text()
    page.click("#search-clear")
    page.locator("#queue li").first.wait_for()

    # (7) live updates: a case that turns overdue and urgent arrives without a reload
    late = (
        Case.objects.filter(status="in_progress", due_at__gt=timezone.now() + timedelta(hours=2))
        .order_by("pk")
        .first()
    )
    Case.objects.filter(pk=late.pk).update(priority=1, due_at=timezone.now() - timedelta(hours=1))
    # … and a new urgent report (routed straight to its grid, in no dispatch queue) too
    from gridsvc.cases.models import Category
    from gridsvc.territory.models import Household

    household = Household.objects.filter(unit__building__grid__isnull=False).order_by("pk")[0]
    fresh = services.report_case(
        reporter=None,
        category=Category.objects.get(code="hazard.fire"),
        title="楼道堆物起火隐患 browser test",
        household=household,
        priority=1,
    ).case
    page.evaluate("window.gridsvc.poll()")
    page.wait_for_selector("#live:not([hidden])")
    assert late.number in page.locator("#live").inner_text()
    assert fresh.number in page.locator("#live").inner_text()
    assert page.evaluate(f"window.gridsvc.state.cases.some((c) => c.id === {fresh.pk})")
    page.wait_for_selector(f"#queue li[data-case='{late.pk}']")

    # (4) exports: monthly report, ledgers, layers reachable; the case sheet prints alone
    page.click(".tabs [data-tab=exports]")
    monthly = page.locator("[data-export=monthly-xlsx]")
    href = monthly.get_attribute("href")
    assert "/api/v1/reports/monthly/" in href and "format=xlsx" in href
    answer = page.request.get(f"{url}{href}")
    assert answer.status == 200, answer.status
    ledger = page.locator("[data-export^=ledger-]")
    assert ledger.count() == 7
    assert page.request.get(f"{url}{ledger.first.get_attribute('href')}").status == 200
    assert page.locator("[data-export=cases-geojson]").count() == 1
    page.click(".tabs [data-tab=queue]")
    target = page.locator("#queue li:not(.card-red)").first
    case_id = int(target.get_attribute("data-case"))
    target.locator(".title button").click()
    page.wait_for_selector(f"#case-detail[data-case='{case_id}'][data-state=ready]")
    # (9) timeline kinds in words, not report/route/red_card
    kinds = page.locator("#case-detail .timeline li > div:first-child b").all_inner_texts()
    assert kinds and kinds[0] == "上报", kinds
    assert not {"report", "route", "red_card", "yellow_card", "assign"} & set(kinds)
    assert page.locator(".tabs [data-tab=case]").get_attribute("aria-selected") == "true"
    # (6) a deadline in the past is refused in the page, nothing is sent
    detail = page.locator("#case-detail")
    if detail.locator("[data-action=set_deadline]").count():
        detail.locator("[data-action=set_deadline]").click()
        detail.locator("input[name=due_at]").fill("2020-01-01T09:00")
        version = Case.objects.get(pk=case_id).version
        detail.locator("form[data-form=set_deadline] button[type=submit]").click()
        due = detail.locator("input[name=due_at]")
        assert due.evaluate("(e) => e.validity.rangeUnderflow") is True
        assert Case.objects.get(pk=case_id).version == version
        detail.locator("form[data-form=set_deadline] button[type=button]").click()
    page.emulate_media(media="print")
    page.evaluate("document.body.classList.add('printing-case')")
    assert not page.locator("#map").is_visible()
    assert not page.locator(".topbar").is_visible()
    assert page.locator("#case-detail .timeline").is_visible()
    assert page.locator("#case-detail .print-head").is_visible()
    assert "null" not in page.locator("#case-detail").inner_text()
    page.screenshot(path=str(ARTIFACTS / "web-case-sheet.png"), full_page=True)
    page.evaluate("document.body.classList.remove('printing-case')")
    page.emulate_media(media="screen")

    # (2) a 412 race: another dispatcher sets a new deadline meanwhile; the card shows the
    # change and the action runs only when confirmed again
    page.click(".tabs [data-tab=queue]")
    other = page.locator("#queue li:not(.card-red)").first
    other_id = int(other.get_attribute("data-case"))
    new_due = timezone.now() + timedelta(days=9)
    services.act(
        other_id,
        "set_deadline",
        Member.objects.get(username="street2"),
        data={"due_at": new_due.isoformat()},
    )
    version = Case.objects.get(pk=other_id).version
    other.locator("[data-action=set_deadline]").click()
    other.locator("form[data-form=set_deadline] button[type=submit]").click()
    error = other.locator(".action-error[data-status='412']")
    error.wait_for()
    change = error.locator("li[data-field=due_l]")
    assert change.count() == 1
    shown = page.evaluate(
        "(iso) => new Date(iso).toLocaleString('zh-CN', { hour12: false, month: '2-digit',"
        " day: '2-digit', hour: '2-digit', minute: '2-digit' })",
        new_due.isoformat(),
    )
    assert shown in change.inner_text()
    assert shown in other.locator(".meta").inner_text()
    assert Case.objects.get(pk=other_id).version == version  # nothing overwritten
    submit = other.locator("form[data-form=set_deadline] button[type=submit][data-again='1']")
    submit.click()
    page.wait_for_selector(f"#queue li[data-case='{other_id}']", state="detached")
    assert Case.objects.get(pk=other_id).version == version + 1
    unity_view(page)
    services_decision(page)
    assert [e for e in errors if not any(s in e for s in ("412", "500", "502", "503"))] == []


def unity_view(page) -> None:
    """Issue 20 on the page: the 五员's 一日一报 today (figures, the missing with 催报), open
    信访 and this year's activities as a map layer (off until asked for)."""
    page.click(".tabs [data-tab=unity]")
    page.wait_for_selector("#screening[data-state=ready]")
    expected = int(page.locator("#screening [data-kpi=expected] b").inner_text())
    missing = int(page.locator("#screening [data-kpi=missing_n] b").inner_text())
    assert expected > 0 and "五员" in page.locator("#screening .summary").inner_text()
    assert page.locator("#screening-missing li button.chase").count() == missing
    assert page.locator("#petitions").get_attribute("data-state") in ("ready", "empty")
    map_js = "window.gridsvc.state.map.getLayoutProperty('activities', 'visibility')"
    assert page.evaluate(map_js) == "none"  # layers do not muddle by default
    page.click("#unity-show-map")
    assert page.evaluate(map_js) == "visible"
    assert int(page.locator("#activities-count").inner_text().strip("()")) > 0
    assert_accessible(page, "民族团结", AXE_FOUND)
    page.wait_for_function(MAP_SETTLED_JS, timeout=10_000)
    # the map was fitted to them: every activity inside the view
    outside = page.evaluate(
        """() => { const m = window.gridsvc.state.map; const b = m.getBounds();
          return window.gridsvc.state.activities.filter((f) => !b.contains(f.geometry.coordinates))
            .map((f) => f.geometry.coordinates); }"""
    )
    assert outside == [], outside
    assert page.evaluate(RENDERED_JS, ["activities"])["activities"] > 0
    page.screenshot(path=str(ARTIFACTS / "web-unity.png"))
    activity_photo_thumbnails(page)
    page.uncheck("#show-activities")
    # the joint venue visits (宗教场所共同走访): each with its status, the overdue one in red,
    # the venue on the map with its last visit
    page.wait_for_selector("#venues[data-state=ready]")
    late = page.locator("#venues li[data-status=overdue]")
    assert late.count() >= 1 and "venue-late" in late.first.get_attribute("class")
    assert late.first.locator(".badge.red[data-status=overdue]").inner_text() == "逾期"
    assert "最近走访" in late.first.locator(".meta").inner_text()
    statuses = page.locator("#venues li[data-status] .badge[data-status]").all_inner_texts()
    assert set(statuses) <= {"待走访", "逾期", "漏访", "已走访"}, statuses
    assert (
        page.evaluate(
            "window.gridsvc.state.placesData.features.filter((f) => f.properties.visit_label).length"
        )
        >= 1
    )
    late.first.locator("button.link").click()
    page.wait_for_selector(".maplibregl-popup .venue-last")
    assert "最近走访" in page.locator(".maplibregl-popup .venue-last").inner_text()
    pairings_ratings_ledgers(page)


def pairings_ratings_ledgers(page) -> None:
    """The street desk's 结对帮扶 (help records counted from ``{id}/help/``), this year's 评比
    (the revoked one marked) and a 台账 link per community that downloads the xlsx with the
    page's session."""
    from django.utils import timezone

    from gridsvc.community.models import Pairing, PairingHelp, Rating
    from gridsvc.territory.models import Community

    page.wait_for_selector("#pairings[data-state=ready]")
    shown = page.locator("#pairings li[data-pairing]")
    assert shown.count() == min(Pairing.objects.count(), 50), shown.count()
    first = shown.first
    records = PairingHelp.objects.filter(pairing_id=int(first.get_attribute("data-pairing")))
    assert first.locator(".pairing-help").get_attribute("data-help-count") == str(records.count())
    helped = page.locator("#pairings .pairing-help:not([data-help-count='0'])")
    assert helped.count() >= 1 and "最近帮扶" in helped.first.inner_text()
    year = timezone.localdate().year
    page.wait_for_selector("#ratings[data-state=ready]")
    rated = Rating.objects.filter(year=year)
    assert page.locator("#ratings li[data-rating]").count() == min(rated.count(), 200)
    revoked = page.locator("#ratings li[data-revoked]")
    assert revoked.count() == rated.filter(revoked=True).count() >= 1
    assert "已撤销" in revoked.first.inner_text()
    links = page.locator("#community-ledgers a[data-export^=community-ledger-]")
    assert links.count() == Community.objects.count()
    origin = page.evaluate("location.origin")
    answer = page.request.get(f"{origin}{links.first.get_attribute('href')}")
    assert answer.status == 200, answer.status
    assert answer.headers["content-type"].startswith(
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    ), answer.headers["content-type"]
    assert answer.body()[:2] == b"PK"


CLOSE_POPUPS_JS = (
    "() => document.querySelectorAll('.maplibregl-popup-close-button').forEach((b) => b.click())"
)


def activity_photo_thumbnails(page) -> None:
    """An activity's popup shows its photos as thumbnails, fetched with the page's session and
    drawn from blob: URLs under the page's CSP (no console error); an activity without photos
    shows none."""
    import io

    from PIL import Image

    from gridsvc.community.models import Activity
    from gridsvc.community.photos import add_activity_photo

    # the activity drawn nearest the map's centre (on top where points share a spot)
    at = page.evaluate(
        """() => { const m = window.gridsvc.state.map; const c = m.getCanvas().getBoundingClientRect();
          const mid = m.project(m.getCenter());
          const hits = m.queryRenderedFeatures({ layers: ["activities"] });
          const d = (f) => { const p = m.project(f.geometry.coordinates); return Math.hypot(p.x - mid.x, p.y - mid.y); };
          hits.sort((a, b) => d(a) - d(b));
          const p = m.project(hits[0].geometry.coordinates);
          return [c.left + p.x, c.top + p.y]; }"""
    )
    page.mouse.click(*at)
    box = page.locator(".maplibregl-popup .activity-photos")
    box.wait_for(state="attached")  # no photos yet: empty, so of no size
    page.wait_for_selector(
        ".maplibregl-popup .activity-photos:not([data-state=loading])", state="attached"
    )
    activity = Activity.objects.get(pk=int(box.get_attribute("data-activity")))
    page.evaluate(CLOSE_POPUPS_JS)  # the click may open a place's popup beside it
    had = activity.photos.count()
    for colour in ((200, 60, 60), (60, 160, 90)):
        buf = io.BytesIO()
        Image.new("RGB", (64, 48), colour).save(buf, "JPEG")
        add_activity_photo(activity.recorded_by, activity, buf.getvalue())
    page.mouse.click(*at)
    page.wait_for_selector(".maplibregl-popup .activity-photos[data-state=ready] img")
    thumbs = page.locator(".maplibregl-popup .activity-photos img")
    assert thumbs.count() == min(had + 2, 6)
    # each thumbnail decoded from the file the API served (a blob: URL the CSP allows)
    loaded = page.evaluate(
        """() => [...document.querySelectorAll(".maplibregl-popup .activity-photos img")]
          .map((i) => [i.src.slice(0, 5), i.complete && i.naturalWidth > 0])"""
    )
    assert loaded and all(v == ["blob:", True] for v in loaded), loaded
    page.evaluate(CLOSE_POPUPS_JS)  # the click may open a place's popup beside it


def venue_tasks_due() -> None:
    """This month's and last month's joint venue visits (made by the venue rule's generator,
    the demo's rule when it has one) with one of this month's overdue, so the 民族团结 tab has
    each kind to show."""
    from datetime import timedelta

    from django.utils import timezone

    from gridsvc.community.models import VenueTask
    from gridsvc.community.venues import generate_venue_tasks
    from gridsvc.visits.models import RELIGIOUS_VENUES, VisitRule

    rule = VisitRule.objects.filter(target_group=RELIGIOUS_VENUES).order_by("pk").first()
    if rule is None:
        rule = VisitRule(
            code="mosque-joint-monthly-web",
            name="每个月和清真寺共同走访",
            target_group=RELIGIOUS_VENUES,
            frequency="monthly",
            window_days=20,
            visitor_level="grid_member",
            joint_visit=True,
            joint_with="清真寺管委会",
        )
        rule.full_clean()
        rule.save()
    today = timezone.localdate()
    first = today.replace(day=1)
    generate_venue_tasks(rule, (first - timedelta(days=1)).replace(day=1), today)
    task = VenueTask.objects.filter(rule=rule, period_start=first).order_by("pk").first()
    assert task is not None, "no religious venue in the demo"
    VenueTask.objects.filter(pk=task.pk).update(status="overdue", updated_at=timezone.now())


def services_decision(page) -> None:
    """Issue 21 on the page: an application the community reviewed waits for the street desk,
    which approves it from the page (reasons asked first); 应保尽保 gaps and migrant flows."""
    from decimal import Decimal

    from gridsvc.accounts.models import Member
    from gridsvc.assistance import services as assist
    from gridsvc.assistance.models import Application
    from gridsvc.territory.models import Household

    household = Household.objects.filter(unit__building__grid__isnull=False).exclude(
        pk__in=Application.objects.filter(kind="student_aid").values("household")
    )[0]
    actor = lambda stage: Member.objects.get(pk=assist.actors_of(household, stage)[0])  # noqa: E731
    app = assist.submit(
        actor("submit"), household, "student_aid", reason="子女上学困难"
    ).application
    assist.check(
        actor("check"), app.pk, members_count=3, monthly_income=Decimal("900"), documents=["户口簿"]
    )
    assist.review(actor("review"), app.pk, recommended=True, opinion="情况属实,同意上报")
    page.click(".tabs [data-tab=services]")
    item = page.locator(
        f"#applications details[data-stage=reviewed] li[data-application='{app.pk}']"
    )
    item.wait_for()
    item.locator("[data-action=approve]").click()
    assert item.locator(".action-error").is_visible()  # the reasons first, nothing sent
    assert Application.objects.get(pk=app.pk).status == "reviewed"
    item.locator("input[name=reason]").fill("符合助学条件 browser test")
    item.locator("[data-action=approve]").click()
    page.wait_for_selector(f"#applications li[data-application='{app.pk}']", state="detached")
    app.refresh_from_db()
    assert app.status == "approved" and app.decision_reason == "符合助学条件 browser test"
    assert "批准" in page.locator("#toast").inner_text()
    assert page.locator("#gaps tr[data-grid]").count() >= 1
    assert page.locator("#flows tr[data-month]").count() == 3
    assert_accessible(page, "民生服务", AXE_FOUND)
    page.wait_for_function(MAP_SETTLED_JS, timeout=10_000)
    page.screenshot(path=str(ARTIFACTS / "web-services.png"))


def tablet_in_english(url: str) -> None:
    with browser_page(width=768, height=1024) as (page, errors):
        page.goto(f"{url}/")
        assert "/login/" in page.url
        page.fill("#id_username", "street")
        page.fill("#id_password", "wrong-password")
        page.click("button[type=submit]")
        assert page.locator("[role=alert]").is_visible()
        # signed in straight onto the English page (one load of it, not two)
        begin_login(page, url, "street", next_page="/?lang=en")
        wait_ready(page)
        assert page.locator(".brand").inner_text().startswith("Grid management")
        map_box = page.locator("#map").bounding_box()
        panel_box = page.locator("#panel").bounding_box()
        assert panel_box["y"] >= map_box["y"] + map_box["height"] - 1  # panel below the map
        assert map_box["width"] >= 760 and panel_box["width"] >= 760
        assert page.evaluate(CANVAS_COLOURS_JS) > 3, "the map canvas is blank"
        assert int(page.locator("[data-count=overdue]").inner_text()) > 0

        page.click(".tabs [data-tab=visits]")
        assert page.locator("#coverage tr[data-grid]").count() == 7
        assert int(page.locator("#missing-count").inner_text()) > 0
        assert page.locator("#missing details[data-position=grid_member] li").count() >= 1
        # (10) each missing report with role, where they serve and a chase (催报) that sticks
        row = page.locator("#missing details[data-position=grid_member] li").first
        member = row.get_attribute("data-member")
        assert row.locator(".role").inner_text() == "Grid member"
        assert row.locator(".where").inner_text() not in ("", "—")
        row.locator("button.chase").click()
        page.wait_for_selector(f"#missing li[data-member='{member}'] button.chase:disabled")
        page.wait_for_selector("#toast:has-text('Chase')")
        if page.evaluate("window.gridsvc.state.paths.has('/api/v1/daily-reports/chase/')"):
            # the server's chase: one reminder in the member's inbox, seen by every dispatcher
            from django.utils import timezone

            from gridsvc.supervision.chase import chased_on

            assert chased_on(timezone.localdate(), [int(member)]), "no chase stored"
        for kind in ("building_head", "unit_head"):
            where = page.locator(f"#missing details[data-position={kind}] li .where")
            if where.count():  # a building (or a unit of one) with its grid in brackets
                assert "(" in where.first.text_content(), where.first.text_content()
        page.reload()
        wait_ready(page)
        page.click(".tabs [data-tab=visits]")
        page.wait_for_selector(f"#missing li[data-member='{member}'] button.chase:disabled")
        assert_accessible(page, "visits (tablet, English)", AXE_FOUND)
        page.locator("#missing").screenshot(path=str(ARTIFACTS / "web-missing-reports.png"))

        page.click(".tabs [data-tab=figures]")
        page.wait_for_selector("#tab-figures[data-ready='1']", timeout=20_000)
        assert page.locator("#fig-month").input_value() == "10"  # the last complete month
        assert page.locator("#chart-trend").get_attribute("role") == "img"
        assert page.locator("[data-kpi=resolution_rate] b").inner_text().endswith("%")
        chart_colours = """(id) => { const c = document.getElementById(id);
          const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data; let n = 0;
          for (let i = 3; i < d.length; i += 4) if (d[i] > 0) n++; return n; }"""
        for chart in ("chart-category", "chart-level", "chart-visits", "chart-trend"):
            assert page.evaluate(chart_colours, chart) > 500, f"{chart} is blank"
        page.screenshot(path=str(ARTIFACTS / "web-tablet-en.png"), full_page=True)
        assert_accessible(page, "monthly figures (tablet, English)", AXE_FOUND)
        assert errors == []
