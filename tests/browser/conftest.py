"""Browser tests: Playwright for Python driving Debian's chromium against
pytest-django's live server (real derivatives: Celery is eager in tests).

Every page a test opens is watched: a console error, an uncaught exception or
a Content-Security-Policy violation fails the test at teardown, unless the
test declares it expected with ``page.expect_console_errors(pattern)``.

Screenshots go to ``var/screenshots/`` (README: "Screenshots"), named
``<name>-<width>x<height>.png``.

Chromium is installed by ``.ci/run`` (``apt-get install -y chromium``). On a
developer machine without it the tests skip with that reason; under CI
(``CI`` set) a missing browser is a failure, never a silent skip.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
SCREENSHOTS = Path(__file__).resolve().parents[2] / "var" / "screenshots"
DESKTOP = {"width": 1280, "height": 800}
MOBILE = {"width": 375, "height": 812}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    here = str(Path(__file__).parent)
    missing = not Path(CHROMIUM).exists()
    for item in items:
        if not str(item.fspath).startswith(here):
            continue
        item.add_marker(pytest.mark.browser)
        if missing and not os.environ.get("CI"):
            item.add_marker(
                pytest.mark.skip(reason=f"no browser at {CHROMIUM}: apt-get install -y chromium (CI installs it)")
            )


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"CI must install chromium ({CHROMIUM} is missing): apt-get install -y chromium")
    from playwright.sync_api import sync_playwright

    # Playwright's sync API keeps an event loop running in this thread for as
    # long as the browser lives; Django would then refuse every ORM call of
    # this thread (tests, fixtures, the database's teardown) as "async". They
    # are synchronous and safe, so allow them while the browser lives (tests
    # that start subprocesses strip the variable: tests/test_platform.py).
    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    try:
        with sync_playwright() as p:
            b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            yield b
            b.close()
    finally:
        if previous is None:
            os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        else:
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous


class WatchedPage:
    """A Playwright page plus what it said on the console."""

    def __init__(self, page: Any) -> None:
        self.page = page
        self.errors: list[str] = []
        self.allowed: list[re.Pattern[str]] = []
        page.on("console", self._console)
        page.on("pageerror", lambda exc: self.errors.append(f"uncaught: {exc}"))

    def _console(self, msg: Any) -> None:
        if msg.type == "error":
            self.errors.append(f"console: {msg.text}")

    def expect_console_errors(self, pattern: str) -> None:
        """Declare console errors matching ``pattern`` expected (e.g. a 403
        the test provokes on purpose)."""
        self.allowed.append(re.compile(pattern))

    def unexpected(self) -> list[str]:
        return [e for e in self.errors if not any(p.search(e) for p in self.allowed)]

    def __getattr__(self, name: str) -> Any:
        return getattr(self.page, name)


def _watched(browser: Any, viewport: dict[str, int], **options: Any) -> Iterator[WatchedPage]:
    context = browser.new_context(viewport=viewport, **options)
    context.set_default_timeout(15_000)
    watched = WatchedPage(context.new_page())
    yield watched
    context.close()
    problems = watched.unexpected()
    assert not problems, "the page reported errors:\n" + "\n".join(problems)


@pytest.fixture
def page(browser: Any, live_server: Any) -> Iterator[WatchedPage]:
    """A desktop page (1280x800)."""
    yield from _watched(browser, DESKTOP)


@pytest.fixture
def mobile_page(browser: Any, live_server: Any) -> Iterator[WatchedPage]:
    """A phone-sized page (375x812, touch)."""
    yield from _watched(browser, MOBILE, is_mobile=True, has_touch=True, device_scale_factor=2)


@pytest.fixture
def shot() -> Callable[[Any, str], Path]:
    """shot(page, "portal-grid") saves var/screenshots/portal-grid-1280x800.png."""

    def take(page: Any, name: str) -> Path:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        size = page.viewport_size
        path = SCREENSHOTS / f"{name}-{size['width']}x{size['height']}.png"
        page.screenshot(path=str(path), full_page=False)
        return path

    return take


@pytest.fixture(autouse=True)
def _live_settings(settings: Any) -> None:
    # The live server runs in a thread of this process: eager Celery and the
    # test media root apply to it too (tests/conftest.py::_isolated).
    settings.DEBUG = False


_AXE_STYLE = re.compile(r"Applying inline style violates")
AXE = next((Path(__file__).resolve().parents[2] / "static" / "vendor").glob("axe-core-*/axe.min.js"))


@pytest.fixture
def axe() -> Callable[[Any], list[dict[str, Any]]]:
    """axe(page) runs the vendored axe-core on the page as it is and returns
    the serious and critical violations (id, impact, help, targets).

    axe is evaluated through the DevTools protocol, which the page's CSP does
    not govern, so the policy under test stays exactly as served."""
    source = AXE.read_text()

    def run(page: Any) -> list[dict[str, Any]]:
        before = len(getattr(page, "errors", []))
        page.evaluate(source)
        result = page.evaluate("async () => (await axe.run(document, {resultTypes: ['violations']})).violations")
        if isinstance(page, WatchedPage):
            # Some axe checks add <style> elements of their own, which the
            # policy blocks (and logs): axe's doing, not the page's.
            page.errors[before:] = [e for e in page.errors[before:] if not _AXE_STYLE.search(e)]
        return [
            {
                "id": v["id"],
                "impact": v["impact"],
                "help": v["help"],
                "targets": [n["target"] for n in v["nodes"]][:5],
            }
            for v in result
            if v["impact"] in ("serious", "critical")
        ]

    return run
