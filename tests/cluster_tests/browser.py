"""The console in a browser, for the cluster tests: the console as a process (stopped by
its PID whatever happens), Debian's headless Chromium driven by Playwright, and a page
opened with the console's token.

Chromium's resolver answers nothing but the names a test maps (``REBINDING``): nothing
reaches beyond 127.0.0.1. No browser is ever downloaded. The fixtures are registered for
every cluster test by ``conftest.py``.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect, sync_playwright

from hack.localcluster.console_process import Console, running_console
from hack.localcluster.controlplane import LocalCluster
from tests.tools import install_hint, tools_required

CHECKOUT = Path(__file__).resolve().parents[2]
REBINDING = "rebind.example"  # a hostile name the browser resolves to 127.0.0.1
RESOLVER_RULES = f"MAP {REBINDING} 127.0.0.1, MAP * ~NOTFOUND, EXCLUDE 127.0.0.1"


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    chromium = shutil.which("chromium")
    if chromium is None:
        message = f"chromium is not installed ({install_hint('browser')})"
        if tools_required():
            pytest.fail(message)  # under `make test` and in CI: fail, never skip
        pytest.skip(message)
    expect.set_options(timeout=20_000)  # a loaded machine; a live change takes < 1 s idle
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=chromium,
            headless=True,
            # Straight to 127.0.0.1 and the mapped names, even with a proxy in the
            # environment (it would resolve the rebinding name itself).
            args=[f"--host-resolver-rules={RESOLVER_RULES}", "--no-proxy-server"],
        )
        try:
            yield launched
        finally:
            launched.close()


class Browsing:
    """Browser contexts (each its own cookie jar) opened by one test, closed after it."""

    def __init__(self, browser: Browser) -> None:
        self.browser = browser
        self.contexts: list[BrowserContext] = []

    def new_context(self) -> BrowserContext:
        context = self.browser.new_context()
        self.contexts.append(context)
        return context


@pytest.fixture
def browsing(browser: Browser) -> Iterator[Browsing]:
    b = Browsing(browser)
    try:
        yield b
    finally:
        for context in b.contexts:
            context.close()


@pytest.fixture
def console(cluster: LocalCluster, crds: None, tmp_path: Path) -> Iterator[Console]:
    with running_console(cluster.kubeconfig, tmp_path / "console.log") as c:
        yield c


@dataclass
class Opened:
    page: Page
    errors: list[str]  # script errors and Content-Security-Policy violations

    def still_the_same_page(self) -> None:
        """Never reloaded, and no error on the way."""
        assert self.page.evaluate("window.notReloaded") is True
        assert self.errors == []


def opened(browsing: Browsing, console: Console) -> Opened:
    """A new browser context on the console's URL with its token: the overview, live."""
    page = browsing.new_context().new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    response = page.goto(console.url)
    assert response is not None and response.status == 200
    assert page.url == console.root  # the token is gone from the address bar
    expect(page.get_by_role("status")).to_have_text(re.compile("^Live"))
    page.evaluate("window.notReloaded = true")
    return Opened(page, errors)
