"""Playwright helpers: Debian's Chromium (installed by scripts/setup.sh), headless, no network
beyond loopback, software WebGL for MapLibre."""

from __future__ import annotations

import shutil
from contextlib import contextmanager
from pathlib import Path

ARTIFACTS = Path("test-artifacts")
CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--use-angle=swiftshader",
    "--enable-unsafe-swiftshader",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]


def chromium_path() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


@contextmanager
def browser_page(width: int = 1400, height: int = 900):
    """A fresh page; yields (page, errors) where errors collects console errors."""
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS)
        try:
            with page_in(browser, width, height) as opened:
                yield opened
        finally:
            close_connections_beside_playwright()
            browser.close()


def close_connections_beside_playwright() -> None:
    """Close the database connections a test used beside Playwright's sync API while its
    event loop still runs: opened there, they are not the ones the next test's demo restore
    (tests/conftest.py) closes before dropping the database, and a later query would find
    them dead ("terminating connection due to administrator command")."""
    from django.db import connections

    connections.close_all()


@contextmanager
def page_in(browser, width: int = 1400, height: int = 900):  # type: ignore[no-untyped-def]
    """A fresh page in a new context (cookies and storage of its own) of an open Chromium;
    yields (page, errors) where errors collects console errors."""
    context = browser.new_context(viewport={"width": width, "height": height}, locale="zh-CN")
    page = context.new_page()
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    try:
        yield page, errors
    finally:
        context.close()


def login(page, base_url: str, username: str, password: str = "gridsvc-demo") -> None:
    page.goto(f"{base_url}/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", password)
    page.click("button[type=submit]")
    page.wait_for_selector("body[data-ready='1']", timeout=60_000)


CANVAS_COLOURS_JS = """() => {
  const src = document.querySelector('#map canvas');
  const c = document.createElement('canvas'); c.width = 200; c.height = 150;
  const ctx = c.getContext('2d'); ctx.drawImage(src, 0, 0, 200, 150);
  const d = ctx.getImageData(0, 0, 200, 150).data; const seen = new Set();
  for (let i = 0; i < d.length; i += 4) seen.add((d[i] >> 3) + ',' + (d[i+1] >> 3) + ',' + (d[i+2] >> 3));
  return seen.size;
}"""

# Pixels of the map canvas in the heatmap's warm colours (yellow → orange → red), which none of
# the territory layers (white, green, grey, blue) use; the pins and choropleth are switched off
# before counting.
HEAT_PIXELS_JS = """() => {
  const src = document.querySelector('#map canvas');
  const c = document.createElement('canvas'); c.width = src.width; c.height = src.height;
  const ctx = c.getContext('2d'); ctx.drawImage(src, 0, 0);
  const d = ctx.getImageData(0, 0, c.width, c.height).data; let n = 0;
  for (let i = 0; i < d.length; i += 4) if (d[i] > 200 && d[i+2] < 150 && d[i] - d[i+2] > 90) n++;
  return n;
}"""
