"""The grid member's field app (/field/) in a real browser: Debian's Chromium at phone width
(360 px), emulated geolocation and Playwright's offline mode, against a live server.

One test on purpose (each live-server test flushes the database and reloads the demo street):
grid1 signs in once, the first sync fills IndexedDB, the service worker takes the app shell;
offline, a reload still opens the app with today's tasks; a visit recorded offline survives a
reload in the outbox; back online it is uploaded once (the server holds exactly one visit with
its UUID, GPS and accuracy, and its task closed) and the phone shows it as sent; signing out
wipes the phone's data.
"""

from __future__ import annotations

import io

import pytest
from django.utils import timezone
from PIL import Image

from tests.browser import ARTIFACTS, CHROMIUM_ARGS, chromium_path

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


def test_field_app_offline_day(live_server, committed_demo, monkeypatch, settings):
    # The ORM is used beside Playwright's sync API, whose event loop runs in this thread.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    from playwright.sync_api import sync_playwright

    from gridsvc.accounts.models import Member
    from gridsvc.cases.models import Case
    from gridsvc.chain.models import Position
    from gridsvc.chain.scope import scope_for
    from gridsvc.chain.services import hand_over_by
    from gridsvc.supervision.models import InboxMessage
    from gridsvc.territory.models import Household
    from gridsvc.visits.models import DailyReport, Visit
    from gridsvc.visits.services import local_today, todays_route

    assert chromium_path(), "chromium missing: run scripts/setup.sh"
    lon, lat = grid1_first_task_point()
    url = f"{live_server.url}/field/"
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS)
        context = browser.new_context(
            viewport={"width": 360, "height": 740},
            is_mobile=True,
            has_touch=True,
            locale="zh-CN",
            timezone_id="Asia/Shanghai",
            geolocation={"longitude": lon, "latitude": lat, "accuracy": 12},
            permissions=["geolocation"],
        )
        page = context.new_page()
        errors: list[str] = []
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(str(e)))
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
        try:
            # (1) Sign in once; the first sync fills the phone; the service worker is ready.
            page.goto(url)
            page.fill("#username", "grid1")
            page.fill("#password", "gridsvc-demo")
            page.click("#login-form button[type=submit]")
            page.wait_for_selector("body[data-last-sync^='20']", state="attached", timeout=120_000)
            page.wait_for_function(
                "() => navigator.serviceWorker.controller !== null", timeout=20_000
            )
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
            assert len(shown_cases) == min(
                200, page.evaluate("window.gridsvcField.db.count('cases')")
            )
            handlers = dict(
                Case.objects.filter(pk__in=shown_cases).values_list("id", "handler__username")
            )
            mine = [handlers[c] == "grid1" for c in shown_cases]
            assert mine == sorted(mine, reverse=True)  # the ones grid1 handles first
            unread = page.locator("#inbox-list li[data-read='0']")
            assert (
                unread.count()
                == InboxMessage.objects.filter(
                    member__username="grid1", read_at__isnull=True
                ).count()
                > 0
            )
            message = int(unread.first.get_attribute("data-message"))
            unread.first.locator("button.read").click()
            sync_now(page)
            assert InboxMessage.objects.get(pk=message).read_at is not None
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

            # A case reported offline where the member stands.
            page.click(".tabs button[data-tab=cases]")
            page.wait_for_selector("#case-category option[value='hazard.fire']", state="attached")
            page.select_option("#case-category", "hazard.fire")
            case_title = f"电动车楼道充电 {uuid[:8]}"  # unique: the demo has such cases
            page.fill("#case-title", case_title)
            page.click("#case-save")
            page.wait_for_function(
                "() => document.querySelector('#outbox-count').textContent === '3'",
                timeout=10_000,
            )

            # 一日一报 offline: one item, queued with its own Idempotency-Key.
            page.fill("#daily-text", "3号楼楼道灯不亮")
            page.click("#daily-send")
            page.wait_for_function(
                "() => document.querySelector('#outbox-count').textContent === '4'",
                timeout=10_000,
            )
            page.click(".tabs button[data-tab=outbox]")
            daily = page.locator("#outbox-list li[data-key][data-status=pending]").filter(
                has_text="一日一报"
            )
            assert daily.count() == 1 and daily.get_attribute("data-status") == "pending"
            daily_key = daily.get_attribute("data-key")

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
                "已上报事件 1 件"
                in page.locator(f"#outbox-list li[data-uuid='{uuid2}']").inner_text()
            )
            page.wait_for_selector(
                f"#outbox-list li[data-key='{daily_key}'][data-status='sent']", timeout=60_000
            )
            assert page.locator("#outbox-count").inner_text() == "0"
            page.screenshot(path=str(ARTIFACTS / "field-outbox-sent.png"))
            sync_now(page)
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
            assert Visit.objects.filter(client_uuid__in=[uuid, uuid2]).count() == 2
            reported = Case.objects.filter(title=case_title)
            assert reported.count() == 1  # reported once, though queued offline
            assert reported[0].category.code == "hazard.fire"
            assert abs(reported[0].location.x - lon) < 1e-6
            report = DailyReport.objects.get(member__username="grid1", date=timezone.localdate())
            assert [i["description"] for i in report.items].count("3号楼楼道灯不亮") == 1
            assert not report.nothing_abnormal
            # the refused try and the accepted one: one batch, one key kept across the retry
            assert len(batches) == 2 and batches[0] and batches[0] == batches[1], batches
            # The visited task left today's list.
            page.click(".tabs button[data-tab=tasks]")
            assert page.locator(f"#task-list li[data-task='{task_id}']").count() == 0

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
                "[data-status='accepted']",
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

            # (5) A hand-over (交接) of grid1's post: the next sync purges what grid1 no longer
            # holds from the phone.
            held = page.evaluate("window.gridsvcField.db.count('households')")
            pos = Position.objects.held_at().get(
                member__username="grid1", position_type="grid_member"
            )
            hand_over_by(
                Member.objects.get(username="street"), pos, Member.objects.get(username="grid2")
            )
            still = scope_for(Member.objects.get(username="grid1")).filter(Household.objects.all())
            assert still.count() < held
            sync_now(page)
            assert page.evaluate("window.gridsvcField.db.count('households')") == still.count()
            assert page.locator("#task-list li").count() < tasks_online - 1
            # The visits sent before the hand-over stay shown as sent.
            page.click(".tabs button[data-tab=outbox]")
            assert (
                page.locator(f"#outbox-list li[data-uuid='{uuid2}']").get_attribute("data-status")
                == "accepted"
            )
            assert page.locator("#outbox-list li[data-status='accepted']").count() == 2

            # (6) Sign out wipes the phone's data.
            page.click("#sign-out")
            page.wait_for_selector("#login-view:not([hidden])")
            assert page.evaluate("window.gridsvcField.db.count('households')") == 0
            assert page.evaluate("window.gridsvcField.db.count('outbox')") == 0
            # the two refused calls (upload, refresh) log 401s, the too-old app a 426; the
            # conflict is a 200 with a per-item result; nothing else may fail
            assert [
                e for e in errors if "status of 401" not in e and "status of 426" not in e
            ] == [], errors
            assert len(errors) == 3, errors
        except Exception:
            page.screenshot(path=str(ARTIFACTS / "field-failure.png"))
            print("console errors:", errors)
            print("unanswered requests:", list(inflight.values()))
            print(page.content()[:3000])
            raise
        finally:
            context.close()
            browser.close()


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
