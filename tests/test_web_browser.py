"""The street office's web page in a real browser (Debian's Chromium driven by Playwright)."""

from __future__ import annotations

import pytest

from tests.browser import ARTIFACTS, CANVAS_COLOURS_JS, browser_page, chromium_path, login

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(chromium_path() is None, reason="chromium not installed (scripts/setup.sh)"),
]


def test_login_page_rejects_a_wrong_password(live_server, committed_demo):
    with browser_page() as (page, errors):
        page.goto(f"{live_server.url}/")
        assert "/login/" in page.url
        page.fill("#id_username", "street")
        page.fill("#id_password", "wrong-password")
        page.click("button[type=submit]")
        assert page.locator("[role=alert]").is_visible()


def test_street_sees_the_map_of_its_grids(live_server, committed_demo):
    with browser_page() as (page, errors):
        login(page, live_server.url, "street")
        page.wait_for_selector("body[data-map-idle='1']", timeout=60_000)
        page.screenshot(path=str(ARTIFACTS / "web-street.png"))
        assert page.evaluate(CANVAS_COLOURS_JS) > 3, "the map canvas is blank"
        assert errors == []


def test_tablet_width_and_english_fallback(live_server, committed_demo):
    with browser_page(width=800, height=1100) as (page, errors):
        login(page, live_server.url, "street")
        page.goto(f"{live_server.url}/?lang=en")
        page.wait_for_selector("body[data-ready='1']", timeout=60_000)
        assert page.locator(".brand").inner_text().startswith("Grid management")
        map_box = page.locator("#map").bounding_box()
        panel_box = page.locator("#panel").bounding_box()
        assert panel_box["y"] >= map_box["y"] + map_box["height"] - 1  # panel below the map
        page.screenshot(path=str(ARTIFACTS / "web-tablet-en.png"), full_page=True)
        assert errors == []
