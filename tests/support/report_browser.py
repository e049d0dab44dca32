"""Headless Chromium for the report tests: Debian's chromium + chromedriver, offline, one fresh profile.

Selenium is given explicit paths, so Selenium Manager never runs and never downloads a browser or driver;
SE_OFFLINE is set as a second guard. The host resolver maps every name except localhost to nothing, so a
page that tried to reach a CDN would fail loudly instead of reaching the internet.
"""

from __future__ import annotations

import re
import shutil
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--window-size=1280,2000",
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE localhost, EXCLUDE 127.0.0.1",
)


def missing_browser() -> str | None:
    """Why the browser tests cannot run here, or None when they can."""
    for path in (CHROMIUM, CHROMEDRIVER):
        if not path.exists():
            return f"{path} not installed (apt-get install chromium chromium-driver)"
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed"
    return None


@contextmanager
def chromium() -> Iterator[Any]:
    """A headless Chromium WebDriver with browser console logging on; quits and removes its profile after."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="railbench-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={profile}")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)), options=options)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


# vl-convert's self-contained bundle pairs Vega-Lite 5.20 with Vega 6, and vega-embed says so on every chart.
# The specs are Vega-Lite v5 on purpose (docs/reports.md, "Charts and reports"); this notice is the one console
# warning we accept.
KNOWN_WARNINGS = (re.compile(r"The compiled spec uses Vega v5, but current version is v6\."),)
# mkdocs-charts-plugin gives every spec without a top-level width `width: "container"`; a faceted chart (heat
# map, trend) cannot have a top-level width, so Vega-Lite ignores it and says so. Accepted for mkdocs pages.
MKDOCS_CONTAINER_WIDTH = re.compile(r'Width \\"container\\" only works for single views and layered views')


@dataclass(frozen=True)
class PageRender:
    """What a page showed: per chart container, whether it holds a drawn SVG/canvas; console errors/warnings."""

    charts: dict[str, bool]
    errors: tuple[str, ...]
    warnings: tuple[str, ...]
    screenshot: Path

    def problems(self, also_known: tuple[re.Pattern[str], ...] = ()) -> list[str]:
        """Everything wrong with the render, in words; empty when every chart drew and the console is clean.

        Vega-Lite reports a spec it had to repair (e.g. "Dropping sort property") as a warning, so unknown
        warnings count as problems too.
        """
        out = [f"chart {name} did not render" for name, ok in self.charts.items() if not ok]
        out += [f"console error: {e}" for e in self.errors]
        known = KNOWN_WARNINGS + also_known
        out += [f"console warning: {w}" for w in self.warnings if not any(k.search(w) for k in known)]
        if not self.charts:
            out.append("the page has no charts")
        if not (self.screenshot.is_file() and self.screenshot.stat().st_size > 0):
            out.append("no screenshot")
        return out


# A chart counts as drawn when its container holds an <svg> (or <canvas>) with at least one mark in it.
_CHART_STATE_JS = """
const out = {};
for (const el of document.querySelectorAll(arguments[0])) {
  const key = el.id || el.getAttribute('data-name') || ('chart-' + Object.keys(out).length);
  const svg = el.querySelector('svg');
  const canvas = el.querySelector('canvas');
  const marks = svg ? svg.querySelectorAll('path, rect, line, text').length : 0;
  out[key] = {drawn: (svg !== null && marks > 0) || (canvas !== null && canvas.width > 0),
              failed: el.dataset.rendered === 'error'};
}
return out;
"""


def render(driver: Any, url: str, selector: str, screenshot: Path, timeout_s: float = 20.0) -> PageRender:
    """Open ``url``, wait until every ``selector`` container drew or failed, screenshot, read the console."""
    driver.get_log("browser")  # drop anything logged before this page
    driver.get(url)
    deadline = time.monotonic() + timeout_s
    state: dict[str, dict[str, bool]] = {}
    while time.monotonic() < deadline:
        state = driver.execute_script(_CHART_STATE_JS, selector)
        if state and all(s["drawn"] or s["failed"] for s in state.values()):
            break
        time.sleep(0.1)
    time.sleep(0.2)  # let late console messages arrive
    height = driver.execute_script("return document.documentElement.scrollHeight")
    driver.set_window_size(1280, min(max(int(height), 800), 12000))
    driver.save_screenshot(str(screenshot))
    log = driver.get_log("browser")
    errors = tuple(e["message"] for e in log if e.get("level") == "SEVERE")
    warnings = tuple(e["message"] for e in log if e.get("level") == "WARNING")
    return PageRender({k: bool(v["drawn"]) for k, v in state.items()}, errors, warnings, screenshot)
