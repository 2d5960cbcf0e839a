"""A real browser for the UI journeys: Debian's Chromium driven by Playwright for Python.

No browser is downloaded (`playwright install` is never needed): Playwright starts /usr/bin/chromium. Every process
the browser starts - the Playwright driver, Chromium and its helpers, including crash handlers that re-parent
themselves to init - carries a marker in its environment, so teardown can prove that all of them are gone.
"""

import os
import re
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psutil
from playwright.sync_api import Browser, Page, sync_playwright

from analytics_pipeline import paths

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
VIEWPORT = {"width": 1600, "height": 1000}
TIMEOUT_MS = 60_000  # this machine is small and busy: generous, but every wait is for a visible state
STOP_SECONDS = 15

ARTIFACTS = paths.PROJECT_ROOT / "test-artifacts" / "ui"
README_SCREENSHOTS = paths.PROJECT_ROOT / "docs" / "screenshots"
UPDATE_SCREENSHOTS_ENV = "UPDATE_SCREENSHOTS"

_MARKER = "ANALYTICS_UI_TEST_BROWSER"


@contextmanager
def chromium() -> Iterator[Browser]:
    """Headless Chromium; on exit the browser is closed and every process it started must be gone."""
    token = uuid.uuid4().hex
    os.environ[_MARKER] = token  # inherited by the driver, and through it by Chromium
    try:
        playwright = sync_playwright().start()
        try:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        except BaseException:
            playwright.stop()
            raise
    finally:
        os.environ.pop(_MARKER, None)
    try:
        yield browser
    finally:
        try:
            browser.close()
        finally:
            playwright.stop()
            _check_gone(token)


def _marked(token: str) -> list[psutil.Process]:
    found = []
    for process in psutil.process_iter():
        try:
            if process.environ().get(_MARKER) == token:
                found.append(process)
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
    return found


def _check_gone(token: str) -> None:
    _, alive = psutil.wait_procs(_marked(token), timeout=STOP_SECONDS)
    for leftover in alive:
        try:
            leftover.kill()
        except psutil.NoSuchProcess:
            pass
    assert not alive, f"browser processes still running after close: {[(p.pid, p.name()) for p in alive]}"


def new_page(browser: Browser, base_url: str) -> Page:
    """A page in a fresh browser profile (context), as a first-time visitor sees the UI."""
    context = browser.new_context(base_url=base_url, viewport=VIEWPORT)
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    # A fresh profile may first get the "Join the Dagster community" modal over whatever page it opens: Skip it
    # whenever it shows up before an action.
    page.add_locator_handler(
        page.get_by_text("Join the Dagster community"),
        lambda _: page.get_by_role("button", name="Skip").click(),
    )
    return page


def dismiss_community_modal(page: Page) -> None:
    """Skip the community modal if it is up (the locator handler only fires before actions, not screenshots)."""
    modal = page.get_by_text("Join the Dagster community")
    if modal.is_visible():
        page.get_by_role("button", name="Skip").click()
        modal.wait_for(state="hidden")


def screenshot(page: Page, name: str, readme: bool = False, **options) -> Path:
    """Save a screenshot under test-artifacts/ui/; README ones are copied to docs/screenshots/ on request."""
    dismiss_community_modal(page)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), animations="disabled", **options)
    if readme and os.environ.get(UPDATE_SCREENSHOTS_ENV) == "1":
        README_SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, README_SCREENSHOTS / path.name)
    return path


def safe_name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text)
