"""The grid member's field app (/field/) in a real browser: Debian's Chromium at phone width
(360 px), emulated geolocation and Playwright's offline mode, against a live server.

One day in one test on purpose (each live-server test flushes the database; the next gets the
demo street back as a copy of the session's template): grid1 signs in once, the first sync fills IndexedDB, the map of the grid shows
the day's stops in walking order and the path, the service worker takes the app shell; a
case routed to grid1 is opened (details and ETag kept). Offline, a reload still opens the
app with today's tasks and the map from the phone; visits are recorded (one from a task, one
with a camera photo and a finding that opens a hazard case, one far off), a case reported
where the member stands, the daily report written, the routed case started and resolved.
Back online (after signing in again) everything is sent once — the answer to 办结 is lost in
transit and the retry is answered from its Idempotency-Key — and the test asserts what the
server holds (nothing lost, nothing doubled) and what the phone shows (per-item results:
accepted, duplicate, conflict). A hand-over of grid1's post makes the phone drop what grid1
no longer holds; signing out wipes the phone's data.
"""

from __future__ import annotations

import io

import pytest
from django.utils import timezone
from PIL import Image

from tests.browser import (
    ARTIFACTS,
    CANVAS_COLOURS_JS,
    CHROMIUM_ARGS,
    chromium_path,
    close_connections_beside_playwright,
)

pytestmark = [pytest.mark.browser]


def grid1_first_task_point() -> tuple[float, float]:
    """A point inside the building of one of grid1's open tasks (where the member stands)."""
    from gridsvc.accounts.models import Member
    from gridsvc.visits.models import VisitTask

    member = Member.objects.get(username="grid1")
    task = (
        VisitTask.objects.filter(assigned_member=member, status__in=["open", "overdue"])
        .select_related("household__unit__building")
        .order_by("due_on", "id")
        .first()
    )
    assert task is not None, "the demo street gives grid1 open visit tasks"
    centre = task.household.unit.building.footprint.point_on_surface
    return centre.x, centre.y


def grid1_venue_task():  # type: ignore[no-untyped-def]
    """A religious venue in grid1's grid and this month's joint visit to it (每个月和清真寺共同
    走访), made by the venue rule's generator (the demo's rule when it has one): grid1's task."""
    from gridsvc.chain.models import Position
    from gridsvc.community.models import VenueTask
    from gridsvc.community.venues import generate_venue_tasks
    from gridsvc.territory.models import Building, Place
    from gridsvc.visits.models import RELIGIOUS_VENUES, VisitRule
    from gridsvc.visits.services import local_today

    grid = (
        Position.objects.held_at().get(member__username="grid1", position_type="grid_member").grid
    )
    building = Building.objects.filter(grid=grid).order_by("id").first()
    mosque = Place.objects.create(
        kind="mosque",
        name="测试清真寺",
        address="华林山测试路1号",
        point=building.footprint.point_on_surface,
        community=grid.community,
        grid=grid,
    )
    rule = VisitRule.objects.filter(target_group=RELIGIOUS_VENUES).order_by("pk").first()
    if rule is None:
        rule = VisitRule(
            code="mosque-joint-monthly-field",
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
    generate_venue_tasks(rule, local_today())
    task = VenueTask.objects.get(rule=rule, place=mosque, period_start=local_today().replace(day=1))
    assert task.assigned_member.username == "grid1" and task.status == "open"
    return task


EXPIRE_ACCESS_JS = """() => {
  const f = window.gridsvcField; f.session.accessExp = 1;
  return f.db.put('meta', f.session, 'session').then(() => true);
}"""
EDIT_SENT_VISIT_JS = """(uuid) => {
  const f = window.gridsvcField;
  return f.db.get('outbox', uuid).then((row) => {
    row.body.notes = '改过的记录'; row.status = 'pending';
    return f.db.put('outbox', row);
  }).then(() => true);
}"""
SPOIL_TOKENS_JS = """() => {
  const f = window.gridsvcField;
  f.session.access = 'spoilt'; f.session.refresh = 'spoilt'; f.session.accessExp = Date.now() + 3600e3;
  return f.db.put('meta', f.session, 'session').then(() => true);
}"""


def grid1_case_to_act_on():  # type: ignore[no-untyped-def]
    """A case routed to grid1 and not yet started (派遣 to the grid member: 开始处置 is next):
    one of the demo's, else an open case of grid1's grid dispatched to grid1 by the street."""
    from gridsvc.accounts.models import Member
    from gridsvc.cases import services
    from gridsvc.cases.models import Case
    from gridsvc.chain.models import Position

    case = Case.objects.filter(handler__username="grid1", status="assigned").order_by("id").first()
    if case is not None:
        return case
    grid1 = Member.objects.get(username="grid1")
    post = Position.objects.held_at().get(member=grid1, position_type="grid_member")
    case = (
        Case.objects.filter(grid=post.grid_id, status__in=["reported", "assigned", "reopened"])
        .exclude(description="")
        .order_by("id")
        .first()
    )
    assert case is not None, "the demo street has open cases in grid1's grid"
    street = Member.objects.get(username="street")
    return services.act(case.pk, "assign", street, data={"member": grid1.pk})


PATH_POINTS_JS = """() => {
  const data = window.gridsvcField.map.gl.getSource('path').serialize().data;
  const line = data && (data.geometry || data);
  return line && line.coordinates ? line.coordinates.length : 0;
}"""
SEND_AGAIN_JS = """(uuid) => {
  const f = window.gridsvcField;
  return f.db.get('outbox', uuid).then((row) => { row.status = 'pending'; return f.db.put('outbox', row); })
    .then(() => true);
}"""


def big_png() -> bytes:
    """A camera-sized picture (2400 × 1800) as PNG."""
    out = io.BytesIO()
    Image.new("RGB", (2400, 1800), (190, 60, 40)).save(out, "PNG")
    return out.getvalue()


def sync_now(page) -> None:
    """Tap 立即同步 and wait until that sync has finished and the screen is drawn again."""
    before = page.evaluate("document.body.dataset.lastSync")
    page.click("#sync-now")
    page.wait_for_function(
        "(before) => document.body.dataset.lastSync !== before && !window.gridsvcField.syncing"
        " && !window.gridsvcField.again",
        arg=before,
        timeout=60_000,
    )
    assert page.locator("#sync-msg").inner_text() == "同步完成。"


#: the phone of every browser test here: Chromium at 360 px, touch, Chinese, Beijing time
PHONE = {
    "viewport": {"width": 360, "height": 740},
    "is_mobile": True,
    "has_touch": True,
    "locale": "zh-CN",
    "timezone_id": "Asia/Shanghai",
}


class FieldPhones:
    """Phones in one Chromium against the live server: :meth:`open` one (optionally with an
    emulated GPS fix), :meth:`sign_in` a demo member on it (their first sync done).

    Chromium starts with the first phone, so what a test prepares in the database before it
    runs as it did without Playwright."""

    def __init__(self, base_url: str) -> None:
        self.url = f"{base_url}/field/"
        self.contexts: list = []
        self.playwright = None
        self.browser = None

    def close(self) -> None:
        """Close every phone opened, then Chromium and Playwright (the database connections
        the test used beside Playwright first: see close_connections_beside_playwright)."""
        close_connections_beside_playwright()
        for context in self.contexts:
            context.close()
        if self.browser is not None:
            self.browser.close()
        if self.playwright is not None:
            self.playwright.stop()

    def open(self, geolocation: dict | None = None, console_errors: bool = False):  # type: ignore[no-untyped-def]
        """A new phone: (context, page, errors); ``errors`` collects the page's uncaught
        errors, and its console errors with ``console_errors``."""
        if self.browser is None:
            from playwright.sync_api import sync_playwright

            self.playwright = sync_playwright().start()
            self.browser = self.playwright.chromium.launch(
                executable_path=chromium_path(), args=CHROMIUM_ARGS
            )
        fix = {"geolocation": geolocation, "permissions": ["geolocation"]} if geolocation else {}
        context = self.browser.new_context(**PHONE, **fix)
        self.contexts.append(context)
        page = context.new_page()
        errors: list[str] = []
        if console_errors:
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(str(e)))
        return context, page, errors

    def sign_in(self, page, username: str = "grid1") -> None:  # type: ignore[no-untyped-def]
        """Open the app, sign in and wait for the first sync to have filled the phone."""
        page.goto(self.url)
        page.fill("#username", username)
        page.fill("#password", "gridsvc-demo")
        page.click("#login-form button[type=submit]")
        page.wait_for_selector("body[data-last-sync^='20']", state="attached", timeout=120_000)


@pytest.fixture
def field_phone(live_server, committed_demo, monkeypatch):  # type: ignore[no-untyped-def]
    """The field app's browser session, one set-up for every browser test of the app: the
    demo street loaded, the phones' Chromium (closed with every phone opened after the test)."""
    # The ORM is used beside Playwright's sync API, whose event loop runs in this thread.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    # Chromium is installed by scripts/setup.sh: a missing one fails, never skips.
    assert chromium_path(), "chromium missing: run scripts/setup.sh"
    ARTIFACTS.mkdir(exist_ok=True)
    phones = FieldPhones(live_server.url)
    try:
        yield phones
    finally:
        phones.close()


def test_field_app_offline_day(field_phone, settings):
    from gridsvc.accounts.models import Member
    from gridsvc.cases.models import Case, CaseEvent
    from gridsvc.chain.models import Position
    from gridsvc.chain.scope import scope_for
    from gridsvc.chain.services import hand_over_by
    from gridsvc.supervision.models import InboxMessage
    from gridsvc.territory.models import Household
    from gridsvc.visits.models import DailyReport, Visit
    from gridsvc.visits.services import local_today, todays_route

    lon, lat = grid1_first_task_point()
    target = grid1_case_to_act_on()
    venue_task = grid1_venue_task()
    events_before = CaseEvent.objects.filter(case=target).count()
    context, page, errors = field_phone.open(
        geolocation={"longitude": lon, "latitude": lat, "accuracy": 12}, console_errors=True
    )
    inflight: dict[object, str] = {}  # for the failure report: requests never answered
    page.on("request", lambda r: inflight.__setitem__(r, r.url))
    page.on("requestfinished", lambda r: inflight.pop(r, None))
    page.on("requestfailed", lambda r: inflight.pop(r, None))
    batches: list[str | None] = []
    page.on(
        "request",
        lambda r: (
            batches.append(r.headers.get("idempotency-key"))
            if r.url.endswith("/api/v1/visits/batch/") and r.method == "POST"
            else None
        ),
    )
    lost_answers: list[str] = []

    def lose_first_answer(route) -> None:  # type: ignore[no-untyped-def]
        """The first 办结 reaches the server, but its answer is lost (the connection drops
        on the way back): the phone must retry with the same Idempotency-Key."""
        if lost_answers:
            route.continue_()
            return
        route.fetch()  # the server handles it
        lost_answers.append(route.request.headers.get("idempotency-key", ""))
        route.abort("connectionreset")

    page.route(f"**/api/v1/cases/{target.pk}/actions/resolve/", lose_first_answer)
    try:
        # (1) Sign in once; the first sync fills the phone; the service worker is ready.
        field_phone.sign_in(page)
        page.wait_for_function("() => navigator.serviceWorker.controller !== null", timeout=20_000)
        assert page.locator("#who").inner_text() == "grid1"
        tasks_online = page.locator("#task-list li").count()
        assert tasks_online > 0
        # in walking order: the server's route for the day, stop by stop
        route = todays_route(Member.objects.get(username="grid1"), local_today(), None)
        walk = [t["id"] for stop in route["stops"] for t in stop["tasks"]]
        assert walk, "grid1 has visits due today"
        shown = [
            int(x)
            for x in page.locator("#task-list li").evaluate_all(
                "(els) => els.map((e) => e.dataset.task)"
            )
        ]
        assert shown[: len(walk)] == walk
        assert "步行路线" in page.locator("#route-info").inner_text()
        # The small map of the grid: our own vector tiles, the stops numbered in walking
        # order (coloured by due/overdue) and the walking path.
        page.wait_for_selector("#map[data-ready='1']", timeout=60_000)
        stops = page.locator("#map .stop")
        assert stops.count() == len(route["stops"])
        assert [stops.nth(i).inner_text() for i in range(stops.count())] == [
            str(i + 1) for i in range(len(route["stops"]))
        ]
        today = local_today().isoformat()

        def urgency(stop: dict) -> str:
            due = [t["due_on"] for t in stop["tasks"]]
            if any(t["status"] == "overdue" for t in stop["tasks"]) or min(due) < today:
                return "overdue"
            return "due" if today in due else "open"

        assert [stops.nth(i).get_attribute("data-urgency") for i in range(stops.count())] == [
            urgency(stop) for stop in route["stops"]
        ]
        path = route["path"].get("geometry", route["path"])  # a Feature (or a LineString)
        assert page.evaluate(PATH_POINTS_JS) == len(path["coordinates"]) >= 2
        page.wait_for_function("() => window.gridsvcField.map.gl.areTilesLoaded()", timeout=60_000)
        assert int(page.get_attribute("#map", "data-tiles-network")) > 0
        assert page.evaluate(CANVAS_COLOURS_JS) > 3  # grid, buildings, path drawn
        page.locator("#map").scroll_into_view_if_needed()
        page.screenshot(path=str(ARTIFACTS / "field-tasks.png"))
        assert page.locator("#task-list .badge.overdue, #task-list .badge.due").count() > 0
        # Works at 360 px: nothing wider than the screen; touch targets at least 48 px.
        assert page.evaluate("document.documentElement.scrollWidth") <= 360
        box = page.locator("#task-list li button.visit").first.bounding_box()
        assert box and box["height"] >= 48 and box["width"] >= 48
        # The manifest makes it installable: name, start URL, icons.
        manifest = page.evaluate("fetch('manifest.webmanifest').then((r) => r.json())")
        assert manifest["start_url"] == "/field/" and manifest["display"] == "standalone"
        assert {i["sizes"] for i in manifest["icons"]} >= {"192x192", "512x512"}
        households = page.evaluate("window.gridsvcField.db.count('households')")
        assert households > 0

        # My cases and my inbox, from the feed; a message read on the phone is read on
        # the server after the next sync.
        page.click(".tabs button[data-tab=cases]")
        shown_cases = [
            int(x)
            for x in page.locator("#case-list li").evaluate_all(
                "(els) => els.map((e) => e.dataset.case)"
            )
        ]
        assert shown_cases
        assert len(shown_cases) == min(200, page.evaluate("window.gridsvcField.db.count('cases')"))
        handlers = dict(
            Case.objects.filter(pk__in=shown_cases).values_list("id", "handler__username")
        )
        mine = [handlers[c] == "grid1" for c in shown_cases]
        assert mine == sorted(mine, reverse=True)  # the ones grid1 handles first
        unread = page.locator("#inbox-list li[data-read='0']")
        assert (
            unread.count()
            == InboxMessage.objects.filter(member__username="grid1", read_at__isnull=True).count()
            > 0
        )
        message = int(unread.first.get_attribute("data-message"))
        unread.first.locator("button.read").click()
        sync_now(page)
        assert InboxMessage.objects.get(pk=message).read_at is not None

        # A case routed to grid1: its details from the server (its ETag kept for offline),
        # 开始处置 and 办结 offered.
        page.locator(f"#case-list li[data-case='{target.pk}'] button.open").click()
        page.wait_for_selector(f"#case-view[data-case='{target.pk}']")
        page.wait_for_function(
            "(n) => document.querySelector('#case-head').textContent.startsWith(n)",
            arg=target.number,
        )
        page.wait_for_function(
            "() => !document.querySelector('#case-desc').textContent.includes('联网后')",
            timeout=20_000,
        )
        assert page.locator("#case-desc").inner_text() == target.description.strip()
        assert page.locator("#case-start").is_visible()
        assert page.locator("#case-resolve").is_visible()
        kept_etag = page.evaluate(
            f"window.gridsvcField.db.get('cases', {target.pk}).then((c) => c.etag)"
        )
        assert kept_etag.removeprefix("W/") == target.etag  # weak: the answer was gzipped
        page.click("#case-back")
        page.click(".tabs button[data-tab=tasks]")

        # The access token ran out (a day in the field): the app refreshes before the
        # next call, stores the rotated refresh token, and the sync goes through.
        first_refresh = page.evaluate("window.gridsvcField.session.refresh")
        page.evaluate(EXPIRE_ACCESS_JS)
        sync_now(page)
        assert page.evaluate("window.gridsvcField.session.refresh") != first_refresh

        # (2) Offline: a reload still opens the app shell with today's tasks.
        context.set_offline(True)
        page.reload()
        page.wait_for_selector("body[data-ready='1']", timeout=20_000)
        assert page.locator("#net").inner_text() == "离线"
        assert page.locator("#task-list li").count() == tasks_online
        # the map too: MapLibre from the service worker's cache, the tiles from IndexedDB
        page.wait_for_selector("#map[data-ready='1']", timeout=60_000)
        page.wait_for_function("() => window.gridsvcField.map.gl.areTilesLoaded()", timeout=60_000)
        assert page.locator("#map .stop").count() == len(route["stops"])
        assert int(page.get_attribute("#map", "data-tiles-cached")) > 0
        assert page.get_attribute("#map", "data-tiles-missing") is None
        assert page.evaluate(CANVAS_COLOURS_JS) > 3
        page.screenshot(path=str(ARTIFACTS / "field-offline-tasks.png"))

        # Household search by building / unit / room works offline.
        page.click(".tabs button[data-tab=households]")
        first = page.locator("#hh-list li .what > div:first-child").first.inner_text()
        building = first.split(" ")[0]
        page.fill("#hh-search", f"{building} 101")
        page.wait_for_timeout(200)
        hits = page.locator("#hh-list li .what > div:first-child").all_inner_texts()
        assert hits and all(building in h and "101" in h for h in hits)
        page.click(".tabs button[data-tab=tasks]")

        # (3) Record a visit offline, with the GPS fix and its accuracy.
        task_id = int(page.locator("#task-list li").first.get_attribute("data-task"))
        page.locator("#task-list li button.visit").first.click()
        page.wait_for_function(
            "() => document.querySelector('#gps').textContent.includes('精度')", timeout=10_000
        )
        page.fill("#visit-notes", "离线走访：家中一切正常")
        page.screenshot(path=str(ARTIFACTS / "field-visit.png"))
        page.click("#visit-save")
        row = page.locator("#outbox-list li[data-uuid]").first
        row.wait_for()
        uuid = row.get_attribute("data-uuid")
        assert row.get_attribute("data-status") == "pending"
        assert "待发送" in row.inner_text()
        assert not Visit.objects.filter(client_uuid=uuid).exists()

        # Nothing lost on reload while offline.
        page.reload()
        page.wait_for_selector("body[data-ready='1']", timeout=20_000)
        assert page.locator("#outbox-count").inner_text() == "1"
        page.click(".tabs button[data-tab=outbox]")
        assert (
            page.locator(f"#outbox-list li[data-uuid='{uuid}']").get_attribute("data-status")
            == "pending"
        )
        assert batches == []

        # A second visit offline, from the household list: a photo from the camera (scaled
        # down on the phone) and a finding that opens a hazard case.
        page.click(".tabs button[data-tab=households]")
        page.fill("#hh-search", "")
        page.locator("#hh-list li button.visit").nth(1).click()
        page.wait_for_function(
            "() => document.querySelector('#gps').textContent.includes('精度')", timeout=10_000
        )
        page.fill("#visit-finding", "楼道堆放杂物，堵塞消防通道")
        page.select_option("#visit-category", "hazard.fire")
        page.set_input_files(
            "#visit-photo",
            files=[{"name": "photo.png", "mimeType": "image/png", "buffer": big_png()}],
        )
        page.click("#visit-save")
        page.wait_for_function(
            "() => document.querySelector('#outbox-count').textContent === '2'",
            timeout=10_000,
        )
        uuid2 = page.locator("#outbox-list li[data-uuid]").first.get_attribute("data-uuid")
        assert uuid2 != uuid

        # A third visit, recorded about 900 m away from the household (far off: stored and
        # flagged, never refused).
        context.set_geolocation({"longitude": lon + 0.01, "latitude": lat, "accuracy": 20})
        page.click(".tabs button[data-tab=households]")
        page.locator("#hh-list li button.visit").nth(2).click()
        page.wait_for_function(
            "() => document.querySelector('#gps').textContent.includes('±20')", timeout=10_000
        )
        page.fill("#visit-notes", "在小区门口遇到住户，交谈后记录")
        page.click("#visit-save")
        page.wait_for_function(
            "() => document.querySelector('#outbox-count').textContent === '3'",
            timeout=10_000,
        )
        uuid3 = page.locator("#outbox-list li[data-uuid]").first.get_attribute("data-uuid")
        assert uuid3 not in (uuid, uuid2)
        context.set_geolocation({"longitude": lon, "latitude": lat, "accuracy": 12})

        # A case reported offline where the member stands.
        page.click(".tabs button[data-tab=cases]")
        page.wait_for_selector("#case-category option[value='hazard.fire']", state="attached")
        page.select_option("#case-category", "hazard.fire")
        case_title = f"电动车楼道充电 {uuid[:8]}"  # unique: the demo has such cases
        page.fill("#case-title", case_title)
        page.click("#case-save")
        page.wait_for_function(
            "() => document.querySelector('#outbox-count').textContent === '4'",
            timeout=10_000,
        )

        # 一日一报 offline: one item, queued with its own Idempotency-Key.
        page.fill("#daily-text", "3号楼楼道灯不亮")
        page.click("#daily-send")
        page.wait_for_function(
            "() => document.querySelector('#outbox-count').textContent === '5'",
            timeout=10_000,
        )
        page.click(".tabs button[data-tab=outbox]")
        daily = page.locator("#outbox-list li[data-key][data-status=pending]").filter(
            has_text="一日一报"
        )
        assert daily.count() == 1 and daily.get_attribute("data-status") == "pending"
        daily_key = daily.get_attribute("data-key")

        # The case routed to grid1, offline: 开始处置, then 办结 with the outcome; both
        # queued, the case shown as the phone will have it.
        page.click(".tabs button[data-tab=cases]")
        page.locator(f"#case-list li[data-case='{target.pk}'] button.open").click()
        page.wait_for_selector(f"#case-view[data-case='{target.pk}']")
        assert page.locator("#case-desc").inner_text() == target.description.strip()
        page.click("#case-start")
        page.wait_for_selector("#case-view[data-status='in_progress']")
        assert not page.locator("#case-start").is_visible()
        page.click("#case-resolve")  # without an outcome: asked for one, nothing queued
        page.wait_for_function(
            "() => document.querySelector('#case-note').textContent.includes('处置结果')"
        )
        outcome = f"已清理楼道杂物，恢复通道 {uuid[:8]}"
        page.fill("#case-outcome-text", outcome)
        page.screenshot(path=str(ARTIFACTS / "field-case.png"))
        page.click("#case-resolve")
        page.wait_for_selector("#case-view[data-status='resolved']")
        assert "开始处置、办结" in page.locator("#case-queued").inner_text()
        page.wait_for_function(
            "() => document.querySelector('#outbox-count').textContent === '7'",
            timeout=10_000,
        )
        page.click("#case-back")

        # (4) Online again, but the session is no longer valid (e.g. the refresh token was
        # revoked): the upload is refused with 401, the refresh too, and the app asks to
        # sign in again — keeping the visit. After signing in it is sent, with the same
        # Idempotency-Key, and stored once; the phone shows it as sent.
        page.evaluate(SPOIL_TOKENS_JS)
        context.set_offline(False)
        page.wait_for_selector("#login-view:not([hidden])", timeout=60_000)
        assert "重新登录" in page.locator("#login-error").inner_text()
        page.fill("#username", "grid1")
        page.fill("#password", "gridsvc-demo")
        page.click("#login-form button[type=submit]")
        page.click(".tabs button[data-tab=outbox]")
        page.wait_for_selector(
            f"#outbox-list li[data-uuid='{uuid}'][data-status='accepted']", timeout=60_000
        )
        assert "已发送" in page.locator(f"#outbox-list li[data-uuid='{uuid}']").inner_text()
        page.wait_for_selector(
            f"#outbox-list li[data-uuid='{uuid2}'][data-status='accepted']", timeout=60_000
        )
        assert (
            "已上报事件 1 件" in page.locator(f"#outbox-list li[data-uuid='{uuid2}']").inner_text()
        )
        page.wait_for_selector(
            f"#outbox-list li[data-key='{daily_key}'][data-status='sent']", timeout=60_000
        )
        far = page.locator(f"#outbox-list li[data-uuid='{uuid3}'][data-status='accepted']")
        far.wait_for(timeout=60_000)
        assert "偏远" in far.inner_text()
        # 开始处置 was sent; the answer to 办结 was lost on the way back: that sync stops
        # with the 办结 still pending (its key kept), and the next one sends it again.
        page.wait_for_function(
            "() => document.querySelector('#sync-msg').textContent.includes('同步未完成')",
            timeout=60_000,
        )
        assert len(lost_answers) == 1 and lost_answers[0]
        page.wait_for_function(
            "() => document.querySelector('#outbox-count').textContent === '1'",
            timeout=10_000,
        )
        assert Case.objects.get(pk=target.pk).status == "resolved"  # it did arrive
        sync_now(page)
        resolved = page.locator("#outbox-list li[data-key]").filter(has_text="办结")
        assert resolved.get_attribute("data-status") == "sent"
        assert resolved.get_attribute("data-key") == lost_answers[0]
        assert "重发未重复" in resolved.inner_text()
        assert page.locator("#outbox-count").inner_text() == "0"
        page.screenshot(path=str(ARTIFACTS / "field-outbox-sent.png"))
        visits = list(Visit.objects.filter(client_uuid=uuid).select_related("task", "member"))
        assert len(visits) == 1, visits
        visit = visits[0]
        assert visit.member.username == "grid1"
        assert visit.notes == "离线走访：家中一切正常"
        assert visit.accuracy_m == pytest.approx(12, abs=0.5)
        assert visit.location is not None
        assert abs(visit.location.x - lon) < 1e-6 and abs(visit.location.y - lat) < 1e-6
        assert visit.distance_m is not None  # judged against the household's building
        assert visit.task_id == task_id and visit.task.status == "done"
        second = Visit.objects.get(client_uuid=uuid2)
        photos = list(second.photos.all())
        assert len(photos) == 1 and photos[0].content_type == "image/jpeg"
        with photos[0].image.open() as f:
            assert max(Image.open(f).size) == 1600  # 2400 × 1800 scaled on the phone
        assert len(second.case_ids) == 1
        case = Case.objects.get(pk=second.case_ids[0])
        assert case.category.code == "hazard.fire" and case.household_id == second.household_id
        assert Visit.objects.filter(client_uuid__in=[uuid, uuid2, uuid3]).count() == 3
        reported = Case.objects.filter(title=case_title)
        assert reported.count() == 1  # reported once, though queued offline
        assert reported[0].category.code == "hazard.fire"
        assert abs(reported[0].location.x - lon) < 1e-6
        report = DailyReport.objects.get(member__username="grid1", date=timezone.localdate())
        assert [i["description"] for i in report.items].count("3号楼楼道灯不亮") == 1
        assert not report.nothing_abnormal
        # far off: stored and flagged, at the position the phone had
        third = Visit.objects.get(client_uuid=uuid3)
        assert third.far_off and third.distance_m > 150
        # the case: started and resolved once each, with the outcome, though 办结 was sent
        # twice (the second answered from the stored answer to its Idempotency-Key)
        target.refresh_from_db()
        assert target.status == "resolved" and target.outcome == outcome
        new_events = list(
            CaseEvent.objects.filter(case=target)
            .order_by("id")
            .values_list("to_status", flat=True)[events_before:]
        )
        assert new_events == ["in_progress", "resolved"], new_events
        # the refused try and the accepted one: one batch, one key kept across the retry
        assert len(batches) == 2 and batches[0] and batches[0] == batches[1], batches
        # The visited task left today's list.
        page.click(".tabs button[data-tab=tasks]")
        assert page.locator(f"#task-list li[data-task='{task_id}']").count() == 0

        # A duplicate: the far-off visit sent again unchanged (as after a lost answer) is
        # answered "duplicate" and stored once.
        page.evaluate(SEND_AGAIN_JS, uuid3)
        sync_now(page)
        page.click(".tabs button[data-tab=outbox]")
        row = page.locator(f"#outbox-list li[data-uuid='{uuid3}']")
        assert row.get_attribute("data-status") == "duplicate" and "重复" in row.inner_text()
        assert Visit.objects.filter(client_uuid=uuid3).count() == 1

        # A conflict: the phone sends other content under a stored UUID (here: the notes
        # edited on the phone). The server keeps its copy; the phone shows the conflict
        # and can send it as a new visit, which is accepted.
        page.evaluate(EDIT_SENT_VISIT_JS, uuid)
        sync_now(page)
        page.click(".tabs button[data-tab=outbox]")
        row = page.locator(f"#outbox-list li[data-uuid='{uuid}']")
        assert row.get_attribute("data-status") == "conflict" and "冲突" in row.inner_text()
        assert Visit.objects.get(client_uuid=uuid).notes == "离线走访：家中一切正常"
        row.locator("button.resend").click()
        page.wait_for_selector(f"#outbox-list li[data-uuid='{uuid}']", state="detached")
        page.wait_for_selector(
            f"#outbox-list li[data-uuid]:not([data-uuid='{uuid}']):not([data-uuid='{uuid2}'])"
            f":not([data-uuid='{uuid3}'])[data-status='accepted']",
            timeout=60_000,
        )
        assert Visit.objects.filter(notes="改过的记录").count() == 1

        # The server asks for a newer app (426): the update screen, the outbox kept.
        settings.GRIDSVC_MIN_APP_VERSION = "9.0"
        page.click("#sync-now")
        page.wait_for_selector("#update-view:not([hidden])", timeout=60_000)
        assert "9.0" in page.locator("#update-text").inner_text()
        settings.GRIDSVC_MIN_APP_VERSION = None
        before = page.evaluate("document.body.dataset.lastSync")
        page.click("#update-reload")
        page.wait_for_function(  # the app syncs on start, and now it is let in
            "(before) => document.body.dataset.lastSync && "
            "document.body.dataset.lastSync !== before",
            arg=before,
            timeout=60_000,
        )
        assert page.locator("#main-view").is_visible()

        # Issue 20: grid1's joint venue visit (宗教场所共同走访) is listed beside the
        # household tasks; recorded on the phone it goes through the community batch
        # (kind venue_visit) and completes the task, which then leaves the list.
        from gridsvc.community.models import VenueVisit

        page.click(".tabs button[data-tab=tasks]")
        venue = page.locator(f"#venue-list li[data-venue-task='{venue_task.pk}']")
        venue.wait_for()
        assert "测试清真寺" in venue.inner_text() and "共同走访" in venue.inner_text()
        venue.locator("button.visit").click()
        page.fill("#venue-participants", "3")
        page.fill("#venue-note", "与清真寺管委会共同走访")
        page.click("#venue-save")
        sent = page.locator("#outbox-list li[data-status='sent']:has-text('宗教场所走访')")
        sent.wait_for(timeout=60_000)
        page.wait_for_function("() => !window.gridsvcField.syncing", timeout=60_000)
        visit = VenueVisit.objects.get(place=venue_task.place_id)
        assert (visit.participants, visit.joint, visit.note) == (
            3,
            True,
            "与清真寺管委会共同走访",
        )
        assert visit.recorded_by.username == "grid1"
        venue_task.refresh_from_db()
        assert venue_task.status == "done" and venue_task.done_by_id == visit.pk
        page.click(".tabs button[data-tab=tasks]")
        assert venue.count() == 0

        # (5) A hand-over (交接) of grid1's post: the next sync purges what grid1 no longer
        # holds from the phone.
        held = page.evaluate("window.gridsvcField.db.count('households')")
        pos = Position.objects.held_at().get(member__username="grid1", position_type="grid_member")
        hand_over_by(
            Member.objects.get(username="street"), pos, Member.objects.get(username="grid2")
        )
        still = scope_for(Member.objects.get(username="grid1")).filter(Household.objects.all())
        assert still.count() < held
        # Before the phone has heard of it, grid1 visits a household of the handed-over
        # grid: the visit is refused (made after the hand-over, not in grid1's territory)
        # and the outbox says why.
        on_phone = page.evaluate("window.gridsvcField.db.getAllKeys('households')")
        gone = (
            Household.objects.filter(pk__in=on_phone)
            .exclude(pk__in=still.values("pk"))
            .select_related("unit__building")
            .order_by("id")
            .first()
        )
        page.click(".tabs button[data-tab=households]")
        page.fill("#hh-search", f"{gone.unit.building.name} {gone.room}")
        page.locator(f"#hh-list li[data-household='{gone.pk}'] button.visit").click()
        page.wait_for_function(
            "() => document.querySelector('#gps').textContent.includes('精度')", timeout=10_000
        )
        page.fill("#visit-notes", "交接后的走访")
        page.click("#visit-save")
        refused = page.locator("#outbox-list li[data-status='rejected']")
        refused.wait_for(timeout=60_000)
        assert "住户不在您的辖区" in refused.inner_text()
        assert not Visit.objects.filter(notes="交接后的走访").exists()
        page.wait_for_function("() => !window.gridsvcField.syncing", timeout=60_000)
        page.click(".tabs button[data-tab=tasks]")
        sync_now(page)
        assert page.evaluate("window.gridsvcField.db.count('households')") == still.count()
        assert page.locator("#task-list li").count() < tasks_online - 1
        # the visited households the post covered are gone from the phone, and the map
        # shows the stops grid1 still has
        for v in Visit.objects.filter(client_uuid__in=[uuid, uuid2, uuid3]):
            kept = page.evaluate(
                f"window.gridsvcField.db.get('households', {v.household_id}).then(Boolean)"
            )
            assert kept == still.filter(pk=v.household_id).exists()
        left = todays_route(Member.objects.get(username="grid1"), local_today(), None)
        page.wait_for_function(
            "(n) => document.querySelector('#map').dataset.stops === String(n)",
            arg=len(left["stops"]),
        )
        assert page.locator("#map .stop").count() == len(left["stops"])
        # The visits sent before the hand-over stay shown as sent.
        page.click(".tabs button[data-tab=outbox]")
        assert (
            page.locator(f"#outbox-list li[data-uuid='{uuid2}']").get_attribute("data-status")
            == "accepted"
        )
        assert page.locator("#outbox-list li[data-status='accepted']").count() == 2
        assert page.locator("#outbox-list li[data-status='duplicate']").count() == 1

        # (6) Sign out wipes the phone's data.
        page.click("#sign-out")
        page.wait_for_selector("#login-view:not([hidden])")
        assert page.evaluate("window.gridsvcField.db.count('households')") == 0
        assert page.evaluate("window.gridsvcField.db.count('outbox')") == 0
        assert page.evaluate("window.gridsvcField.db.count('requests')") == 0
        assert page.evaluate("window.gridsvcField.db.count('tiles')") == 0
        assert page.evaluate("window.gridsvcField.db.get('meta', 'session')") is None
        # the two refused calls (upload, refresh) log 401s, the too-old app a 426, the
        # lost answer a connection reset; the conflict is a 200 with a per-item result;
        # nothing else may fail
        expected = ("status of 401", "status of 426", "net::ERR_CONNECTION_RESET")
        assert [e for e in errors if not any(x in e for x in expected)] == [], errors
        assert len(errors) == 4, errors
    except Exception:
        page.screenshot(path=str(ARTIFACTS / "field-failure.png"))
        print("console errors:", errors)
        print("unanswered requests:", list(inflight.values()))
        print(page.content()[:3000])
        raise


def test_field_app_files_the_five_members_report_and_an_activity_offline(field_phone):
    """Issue 20: the 一日一报 card is one card, and its 五员 part shows only to a 五员 member
    (/me/'s unity_memberships): grid1 (一格十员, not 五员) does not see it until a 五员
    membership is recorded and the phone syncs. The member's 一日一报 (here a one-tap 零报告)
    and an activity (座谈会) are then recorded offline, queued as one-item community batches,
    sent once when the phone is back online (a later sync sends nothing again), and the server
    holds one ScreeningReport and one Activity for grid1; the outbox says sent."""
    from gridsvc.chain.models import Position
    from gridsvc.community.models import Activity, ScreeningReport, TeamMembership
    from gridsvc.visits.services import local_today

    post = Position.objects.held_at().get(member__username="grid1", position_type="grid_member")
    grid = post.grid
    reports_before = ScreeningReport.objects.filter(member=post.member).count()
    activities_before = Activity.objects.filter(recorded_by=post.member).count()
    context, page, errors = field_phone.open()
    answered: list[int] = []  # community batches the server answered
    page.on(
        "response",
        lambda r: (
            answered.append(r.status)
            if r.url.endswith("/api/v1/community/batch/") and r.request.method == "POST"
            else None
        ),
    )
    try:
        field_phone.sign_in(page)
        # one 一日一报 card; grid1 is no 五员: the grid post's report only
        assert page.locator(".card h2", has_text="一日一报").count() == 1
        assert page.locator("#daily-zero").is_visible()
        assert page.locator("#screen-card").is_hidden()
        TeamMembership.objects.create(
            team="five_members",
            role="information",
            member=post.member,
            recorded_by=post.member,
            street_id=grid.community.street_id,
            community=grid.community,
            grid=grid,
            valid_from=local_today(),
        )
        sync_now(page)
        page.locator("#screen-card").wait_for()  # now a 五员 member: the same card's 五员 part
        assert page.locator("#daily-card #screen-zero").is_visible()
        assert page.locator(".card h2", has_text="一日一报").count() == 1

        # Offline: a 零报告 in one tap, then a 座谈会 with its counts.
        context.set_offline(True)
        page.wait_for_function("() => document.querySelector('#net').textContent === '离线'")
        page.click("#screen-zero")
        page.click("#activity-card summary")
        page.select_option("#activity-kind", "forum")
        page.fill("#activity-title", "民族团结座谈会")
        page.fill("#activity-participants", "12")
        page.fill("#activity-materials", "30")
        page.click("#activity-save")
        page.click(".tabs button[data-tab=outbox]")
        pending = page.locator("#outbox-list li[data-key][data-status='pending']")
        report = pending.filter(has_text="五员一日一报")
        activity = pending.filter(has_text="民族团结座谈会")
        # the outbox lists what the phone has stored (IndexedDB, asynchronous): wait for it
        report.first.wait_for(timeout=15_000)
        activity.first.wait_for(timeout=15_000)
        assert report.count() == 1 and "零报告" in report.inner_text()
        assert activity.count() == 1 and "座谈会" in activity.inner_text()
        assert answered == []

        # Online again: both are sent once, and a later sync sends nothing again.
        context.set_offline(False)
        sent = "#outbox-list li[data-key][data-status='sent']"
        page.locator(sent).filter(has_text="五员一日一报").wait_for(timeout=60_000)
        page.locator(sent).filter(has_text="民族团结座谈会").wait_for(timeout=60_000)
        page.wait_for_function("() => !window.gridsvcField.syncing", timeout=60_000)
        sync_now(page)
        assert answered == [200, 200]
        rows = (
            page.locator("#outbox-list li[data-key]")
            .filter(has_text="五员一日一报")
            .or_(page.locator("#outbox-list li[data-key]").filter(has_text="民族团结座谈会"))
        )
        assert rows.count() == 2
        assert all("已发送" in t for t in rows.all_inner_texts())

        reports = ScreeningReport.objects.filter(member=post.member)
        assert reports.count() == reports_before + 1
        mine = reports.get(date=local_today())
        assert mine.zero_report and mine.findings == "" and mine.client_uuid is not None
        held = Activity.objects.filter(recorded_by=post.member)
        assert held.count() == activities_before + 1
        forum = held.get(title="民族团结座谈会")
        assert (forum.kind, forum.participants, forum.materials, forum.grid_id) == (
            "forum",
            12,
            30,
            grid.pk,
        )
        assert forum.date == local_today() and forum.client_uuid is not None
        assert errors == []
    except Exception:
        page.screenshot(path=str(ARTIFACTS / "field-unity-failure.png"))
        raise


def test_field_app_venue_visit_offline_with_fix_and_photo(field_phone):
    """Issue 20, the phone side (the field app, /field/, at 360 px): grid1 records the joint
    venue visit (宗教场所共同走访) offline, with the phone's fix (emulated geolocation ~900 m
    from the venue, accuracy 9 m) and a camera photo; the request waits in IndexedDB with the
    photo; back online it is sent once, the server holds the visit with its fix judged like a
    household visit's (far off: flagged, not refused) and one ≤ 1600 px JPEG, the venue's task
    done; the outbox says 偏远 and 照片 1 张, and the photo's bytes have left the phone."""
    from gridsvc.community.models import VenueVisit

    venue_task = grid1_venue_task()
    place = venue_task.place
    lon, lat = place.point.x + 0.01, place.point.y  # ~900 m east of the venue
    context, page, errors = field_phone.open(
        geolocation={"longitude": lon, "latitude": lat, "accuracy": 9}
    )
    field_phone.sign_in(page)
    venue = page.locator(f"#venue-list li[data-venue-task='{venue_task.pk}']")
    venue.wait_for()

    context.set_offline(True)
    venue.locator("button.visit").click()
    page.wait_for_function(
        "() => document.querySelector('#venue-gps').textContent.includes('精度')",
        timeout=10_000,
    )
    page.set_input_files(
        "#venue-photo",
        files=[{"name": "mosque.png", "mimeType": "image/png", "buffer": big_png()}],
    )
    page.fill("#venue-note", "离线共同走访")
    page.click("#venue-save")
    row = page.locator("#outbox-list li:has-text('宗教场所走访')")
    row.wait_for()
    assert row.get_attribute("data-status") == "pending"
    assert "照片 1 张" in row.inner_text()
    (queued,) = page.evaluate("window.gridsvcField.db.getAll('requests')")
    data = queued["body"]["items"][0]["data"]
    assert data["accuracy_m"] == 9 and abs(data["lon"] - lon) < 1e-6
    assert len(data["photos"]) == 1 and len(data["photos"][0]["data"]) > 1000
    assert not VenueVisit.objects.filter(place=place).exists()

    context.set_offline(False)
    sync_now(page)
    sent = page.locator("#outbox-list li[data-status='sent']:has-text('宗教场所走访')")
    sent.wait_for(timeout=60_000)
    assert "偏远" in sent.inner_text() and "照片 1 张" in sent.inner_text()
    visit = VenueVisit.objects.get(place=place)
    assert visit.note == "离线共同走访" and visit.recorded_by.username == "grid1"
    assert visit.far_off and visit.distance_m > 800 and visit.accuracy_m == 9
    assert visit.location_source == "gps"
    (photo,) = visit.photos.all()
    assert photo.content_type == "image/jpeg"
    with Image.open(io.BytesIO(photo.image.read())) as img:
        assert max(img.size) == 1600  # scaled down on the phone
    venue_task.refresh_from_db()
    assert venue_task.status == "done" and venue_task.done_by_id == visit.pk
    (kept,) = page.evaluate("window.gridsvcField.db.getAll('requests')")
    assert "photos" not in kept["body"]["items"][0]["data"] and kept["photoCount"] == 1
    assert errors == []


def test_field_app_records_service_hours_and_pairing_help_offline(field_phone):
    """Issue 20, records the community batch takes and the phone did not: grid1 (one of the
    一格十员, /me/) records 志愿服务时长 under that membership and a 结对帮扶 record under a
    pairing of their grid, both offline; they wait in the outbox, are sent once when online,
    and the server holds one ServiceLog (the membership's total grown by its hours) and one
    PairingHelp (what, hours, amount); the outbox says sent."""
    from decimal import Decimal

    from gridsvc.accounts.models import Member
    from gridsvc.chain.scope import scope_for
    from gridsvc.community.models import Pairing, PairingHelp, ServiceLog, TeamMembership
    from gridsvc.visits.services import local_today

    grid1 = Member.objects.get(username="grid1")
    membership = TeamMembership.objects.get(member=grid1, team="grid_ten")
    hours_before = membership.hours
    today = local_today()
    pairing = (
        scope_for(grid1)
        .filter(Pairing.objects.filter(started__lte=today, ended__isnull=True))
        .order_by("id")
        .first()
    )
    assert pairing is not None, "the demo street has pairings in grid1's grid"
    context, page, errors = field_phone.open()
    try:
        field_phone.sign_in(page)
        context.set_offline(True)
        page.wait_for_function("() => document.querySelector('#net').textContent === '离线'")
        page.click("#hours-card summary")
        page.select_option("#hours-membership", str(membership.pk))
        page.fill("#hours-hours", "2.5")
        page.fill("#hours-note", "社区义诊引导")
        page.click("#hours-save")
        page.click("#help-card summary")
        page.select_option("#help-pairing", str(pairing.pk))
        page.fill("#help-what", "送米面油")
        page.fill("#help-hours", "1")
        page.fill("#help-amount", "200")
        page.click("#help-save")
        page.click(".tabs button[data-tab=outbox]")
        pending = page.locator("#outbox-list li[data-key][data-status='pending']")
        pending.filter(has_text="服务时长").first.wait_for(timeout=15_000)
        pending.filter(has_text="送米面油").first.wait_for(timeout=15_000)
        assert pending.filter(has_text="服务时长").count() == 1
        assert "2.5 小时" in pending.filter(has_text="服务时长").inner_text()
        assert not ServiceLog.objects.filter(membership=membership, note="社区义诊引导").exists()

        context.set_offline(False)
        sent = page.locator("#outbox-list li[data-key][data-status='sent']")
        sent.filter(has_text="服务时长").wait_for(timeout=60_000)
        sent.filter(has_text="送米面油").wait_for(timeout=60_000)
        page.wait_for_function("() => !window.gridsvcField.syncing", timeout=60_000)
        sync_now(page)  # sends nothing again
        (log,) = ServiceLog.objects.filter(membership=membership, note="社区义诊引导")
        assert (log.hours, log.date, log.recorded_by_id) == (Decimal("2.5"), today, grid1.pk)
        membership.refresh_from_db()
        assert membership.hours == hours_before + Decimal("2.5")
        (help_given,) = PairingHelp.objects.filter(pairing=pairing, what="送米面油")
        assert (help_given.hours, help_given.amount, help_given.date) == (
            Decimal("1.0"),
            Decimal("200.00"),
            today,
        )
        assert help_given.client_uuid is not None
        assert errors == []
    except Exception:
        page.screenshot(path=str(ARTIFACTS / "field-hours-help-failure.png"))
        raise


def grid1_post():  # type: ignore[no-untyped-def]
    """grid1's grid member post (its grid, community, street)."""
    from gridsvc.chain.models import Position

    return Position.objects.held_at().get(member__username="grid1", position_type="grid_member")


def test_field_app_files_campaign_returns_offline(field_phone):
    """Issue 20, 排查报送 from the phone: two campaigns started over grid1's community (a
    矛盾纠纷排查化解月 and a 排查不稳定因素) give grid1's grid a return each; the card names them
    (campaign-returns/, kept at each sync, carries each return's campaign name and
    period) and leaves out the return of a
    campaign that has ended. Offline grid1 files findings to the
    first and a 零报告 to the second; meanwhile the street files the second online. Back
    online the first is stored once (findings, grid1, the phone's client_time) and the second,
    recorded on the phone before the street's filing, is refused: the outbox says why in
    words and the street's return stands. Nothing is left to file, so the card is gone."""
    from datetime import timedelta

    from gridsvc.accounts.models import Member
    from gridsvc.community import services
    from gridsvc.community.models import CampaignReturn
    from gridsvc.visits.services import local_today

    post = grid1_post()
    street = Member.objects.get(username="street")
    today = local_today()
    period = {
        "start": today,
        "end": today + timedelta(days=30),
        "community": post.grid.community_id,
    }
    disputes, _ = services.start_campaign(
        street, {"kind": "disputes", "name": "冬季矛盾纠纷排查化解月", **period}
    )
    instability, _ = services.start_campaign(
        street, {"kind": "instability", "name": "岁末排查不稳定因素", **period}
    )
    ended, _ = services.start_campaign(  # its return is no longer to file
        street,
        {
            **period,
            "kind": "disputes",
            "name": "秋季矛盾纠纷排查化解月",
            "start": today - timedelta(days=40),
            "end": today - timedelta(days=10),
        },
    )
    first = CampaignReturn.objects.get(campaign=disputes, grid=post.grid)
    second = CampaignReturn.objects.get(campaign=instability, grid=post.grid)
    context, page, errors = field_phone.open()
    try:
        field_phone.sign_in(page)
        page.locator("#campaign-card").wait_for()
        options = page.locator("#campaign-return option").evaluate_all(
            "(os) => os.map((o) => o.textContent)"
        )
        # named by the campaign: the return carries its name and period (a grid member may
        # not list community-wide campaigns); an ended campaign's return is not offered
        for c in (disputes, instability):
            assert any(c.name in o for o in options), options
        assert not any(ended.name in o or f"排查活动 #{ended.pk}" in o for o in options), options

        context.set_offline(True)
        page.wait_for_function("() => document.querySelector('#net').textContent === '离线'")
        page.click("#campaign-card summary")
        page.select_option("#campaign-return", str(first.pk))
        page.uncheck("#campaign-zero")
        page.fill("#campaign-findings", "邻里噪音纠纷1起，已登记")
        page.fill("#campaign-count", "1")
        page.click("#campaign-save")
        page.wait_for_function(
            "(id) => ![...document.querySelectorAll('#campaign-return option')].some((o) => o.value === String(id))",
            arg=first.pk,
        )
        page.select_option("#campaign-return", str(second.pk))
        page.click("#campaign-save")  # 零报告 (checked again after the first save)
        page.click(".tabs button[data-tab=outbox]")
        pending = page.locator("#outbox-list li[data-key][data-status='pending']")
        pending.filter(has_text="邻里噪音纠纷").wait_for(timeout=15_000)
        pending.filter(has_text="零报告").wait_for(timeout=15_000)
        # nothing left to file (the outbox is drawn before the community cards: wait)
        page.locator("#campaign-card").wait_for(state="hidden", timeout=15_000)
        first.refresh_from_db()
        assert first.filed_at is None
        # the street files the second return online, after the phone recorded its 零报告
        services.file_return(
            street, second, zero_report=False, findings="街道核实：发现1起", findings_count=1
        )

        context.set_offline(False)
        sync_now(page)
        rows = page.locator("#outbox-list li[data-key]")
        sent = rows.filter(has_text="邻里噪音纠纷")
        assert sent.get_attribute("data-status") == "sent"
        refused = rows.filter(has_text="零报告")
        assert refused.get_attribute("data-status") == "refused"
        assert "该网格已有更晚记录的报送" in refused.inner_text()
        first.refresh_from_db()
        assert first.filed_by_id == post.member_id and not first.zero_report
        assert (first.findings, first.findings_count) == ("邻里噪音纠纷1起，已登记", 1)
        assert first.client_time is not None and first.filings.count() == 1
        second.refresh_from_db()
        assert (second.filed_by_id, second.findings) == (street.pk, "街道核实：发现1起")
        page.locator("#campaign-card").wait_for(state="hidden", timeout=15_000)
        assert errors == []
    except Exception:
        page.screenshot(path=str(ARTIFACTS / "field-campaign-failure.png"))
        raise


def test_field_app_logs_a_petition_offline_and_forgets_the_petitioner(field_phone):
    """Issue 20, 信访登记 from the phone: grid1 (grid staff, /me/'s positions) records a
    group petition offline; it waits in the outbox (its label names the subject, never the
    petitioner); back online, a dropped connection leaves it queued with the name; the next
    sync stores it once in grid1's grid, handled by grid1. Once the server has it the
    petitioner's name is gone from the phone's IndexedDB, and it never reached the console."""
    from gridsvc.community.models import Petition
    from gridsvc.visits.services import local_today

    post = grid1_post()
    name = "马测试来访人"
    context, page, errors = field_phone.open()
    console: list[str] = []
    page.on("console", lambda m: console.append(m.text))
    stored_text_js = (
        "() => window.gridsvcField.db.getAll('requests').then((r) => JSON.stringify(r))"
    )
    try:
        field_phone.sign_in(page)
        page.locator("#petition-card").wait_for()
        context.set_offline(True)
        page.wait_for_function("() => document.querySelector('#net').textContent === '离线'")
        page.click("#petition-card summary")
        page.fill("#petition-name", name)
        page.fill("#petition-subject", "反映小区停车难")
        page.check("#petition-ethnic")
        page.fill("#petition-size", "6")
        page.click("#petition-save")
        page.click(".tabs button[data-tab=outbox]")
        row = page.locator("#outbox-list li[data-key]:has-text('反映小区停车难')")
        row.wait_for(timeout=15_000)
        assert row.get_attribute("data-status") == "pending"
        assert "集体访 6 人" in row.inner_text() and name not in row.inner_text()
        assert name in page.evaluate(stored_text_js)  # kept until the server has it
        assert page.input_value("#petition-name") == ""
        assert not Petition.objects.filter(subject="反映小区停车难").exists()

        # back online, the connection drops on the way: the petition stays queued, name kept
        batch = "**/api/v1/community/batch/"
        page.route(batch, lambda route: route.abort("connectionreset"))
        context.set_offline(False)
        page.wait_for_function(
            "() => document.querySelector('#sync-msg').textContent.startsWith('同步未完成')",
            timeout=60_000,
        )
        page.unroute(batch)
        assert row.get_attribute("data-status") == "pending"
        assert name in page.evaluate(stored_text_js)
        assert not Petition.objects.filter(subject="反映小区停车难").exists()
        sync_now(page)
        assert row.get_attribute("data-status") == "sent"
        assert "来访人信息已从手机删除" in row.inner_text()
        (petition,) = Petition.objects.filter(subject="反映小区停车难")
        assert (petition.petitioner, petition.group_size, petition.ethnic_religious) == (
            name,
            6,
            True,
        )
        assert petition.grid_id == post.grid_id and petition.date == local_today()
        assert petition.recorded_by_id == post.member_id == petition.handled_by_id
        assert petition.client_uuid is not None and petition.group_risk
        assert name not in page.evaluate(stored_text_js)
        assert not [m for m in console if name in m]
        assert errors == []
    except Exception:
        page.screenshot(path=str(ARTIFACTS / "field-petition-failure.png"))
        raise


def test_field_app_records_mediations_for_the_mediator_only(field_phone):
    """Issue 20, 调处 from the phone: the card shows only to the community's 调处员 (a 五员
    调处员 membership in /me/): grid1 sees it once given one and synced, and offers the
    dispute cases of the community on the phone. Offline grid1 records a session (达成协议);
    online it is stored once (the case, grid1 as mediator). A second session recorded offline
    after the membership has ended is refused: the outbox says why in words, nothing stored,
    and the card is gone after that sync."""
    from datetime import timedelta

    from gridsvc.cases.models import OPEN_STATUSES, Case
    from gridsvc.community.models import Mediation, TeamMembership
    from gridsvc.visits.services import local_today

    post = grid1_post()
    grid, today = post.grid, local_today()
    case = (
        Case.objects.filter(kind="dispute", grid=grid, status__in=OPEN_STATUSES)
        .order_by("id")
        .first()
    )
    assert case is not None, "the demo street has open disputes in grid1's grid"
    context, page, errors = field_phone.open()
    try:
        field_phone.sign_in(page)
        assert page.locator("#mediation-card").is_hidden()  # grid1 is no 调处员
        membership = TeamMembership.objects.create(
            team="five_members",
            role="mediator",
            member=post.member,
            recorded_by=post.member,
            street_id=grid.community.street_id,
            community=grid.community,
            grid=grid,
            valid_from=today - timedelta(days=10),
        )
        sync_now(page)
        page.locator("#mediation-card").wait_for()
        assert str(case.pk) in page.locator("#mediation-case option").evaluate_all(
            "(os) => os.map((o) => o.value)"
        )

        context.set_offline(True)
        page.wait_for_function("() => document.querySelector('#net').textContent === '离线'")
        page.click("#mediation-card summary")
        page.select_option("#mediation-case", str(case.pk))
        page.select_option("#mediation-outcome", "agreed")
        page.fill("#mediation-note", "双方当面达成协议")
        page.click("#mediation-save")
        page.click(".tabs button[data-tab=outbox]")
        agreed = page.locator(f"#outbox-list li[data-key]:has-text('{case.number}：达成协议')")
        agreed.wait_for(timeout=15_000)
        assert agreed.get_attribute("data-status") == "pending"
        assert not Mediation.objects.filter(case=case, mediator=post.member).exists()

        context.set_offline(False)
        sync_now(page)
        assert agreed.get_attribute("data-status") == "sent"
        (mediation,) = Mediation.objects.filter(case=case, mediator=post.member)
        assert (mediation.outcome, mediation.note, mediation.date) == (
            "agreed",
            "双方当面达成协议",
            today,
        )
        assert mediation.client_uuid is not None

        context.set_offline(True)
        page.wait_for_function("() => document.querySelector('#net').textContent === '离线'")
        page.select_option("#mediation-case", str(case.pk))
        page.select_option("#mediation-outcome", "ongoing")
        page.fill("#mediation-note", "再次调处")
        page.click("#mediation-save")
        ongoing = page.locator(f"#outbox-list li[data-key]:has-text('{case.number}：继续调处')")
        ongoing.wait_for(timeout=15_000)
        membership.valid_to = today - timedelta(days=1)  # no longer the community's 调处员
        membership.save(update_fields=["valid_to"])

        context.set_offline(False)
        sync_now(page)
        assert ongoing.get_attribute("data-status") == "refused"
        assert "只有本社区的调处员或调委会可记录调处" in ongoing.inner_text()
        assert Mediation.objects.filter(case=case, mediator=post.member).count() == 1
        assert page.locator("#mediation-card").is_hidden()
        assert errors == []
    except Exception:
        page.screenshot(path=str(ARTIFACTS / "field-mediation-failure.png"))
        raise


def test_field_app_files_are_a_fixed_list(client) -> None:
    """The shell is HTML under the page policy; the service worker is JavaScript served from
    /field/ (so its scope is the app); anything not on the list — another folder, a path
    climbing out — is a 404."""
    shell = client.get("/field/")
    assert shell.status_code == 200 and shell["Content-Type"].startswith("text/html")
    assert "script-src 'self'" in shell["Content-Security-Policy"]
    sw = client.get("/field/sw.js")
    assert sw.status_code == 200 and sw["Content-Type"].startswith("text/javascript")
    assert sw["Service-Worker-Allowed"] == "/field/"
    assert client.get("/field/manifest.webmanifest")["Content-Type"] == "application/manifest+json"
    for bad in ("/field/field.py", "/field/../urls.py", "/field/%2e%2e/field.py", "/field/x.js"):
        assert client.get(bad).status_code == 404, bad
    assert client.post("/field/").status_code == 405
