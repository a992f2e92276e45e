"""Fixtures for the web app: a site on a temp SQLite database, a signed-in test client, and — for the
browser tests — the same site served by uvicorn on loopback with Debian's Chromium driven by Playwright.

Screenshots go to ``.ci/artifacts/web/`` (ignored by git, kept by CI).
"""

from __future__ import annotations

import re
import socket
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tastemaker.api.admin import issue_key
from tastemaker.web.mount import create_site

from ..api.conftest import held, make_settings  # noqa: F401  (held: a fixture the web tests share)

ARTIFACTS = Path(__file__).resolve().parents[2] / ".ci" / "artifacts" / "web"
CHROMIUM = Path("/usr/bin/chromium")


@dataclass
class Site:
    """A running site (lifespan entered) with helpers to make accounts and sign in."""

    client: TestClient
    settings: Any

    @property
    def services(self) -> Any:
        return self.client.app.state.services  # type: ignore[attr-defined]

    def new_key(self, tier: str = "free", name: str = "web tester") -> str:
        return issue_key(self.services.store, self.services.audit, self.settings, name=name, tier=tier).key

    def sign_in(self, key: str | None = None, client: TestClient | None = None) -> str:
        """Sign ``client`` (default: this site's) in with ``key`` (default: a new one); returns the CSRF token."""
        c = client or self.client
        key = key or self.new_key()
        page = c.get("/signin")
        token = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
        assert token, page.text
        r = c.post("/signin", data={"api_key": key, "csrf_token": token.group(1)}, follow_redirects=False)
        assert r.status_code == 303, r.text
        return csrf_of(c.get("/boards").text)


def csrf_of(html: str) -> str:
    """The CSRF token a signed-in page carries in its forms."""
    m = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert m, "no CSRF token on the page"
    return m.group(1)


@pytest.fixture
def make_site(tmp_path: Path) -> Iterator[Callable[..., Site]]:
    clients: list[TestClient] = []

    def build(**overrides: Any) -> Site:
        settings = make_settings(tmp_path, **overrides)
        client = TestClient(create_site(settings), raise_server_exceptions=False)
        client.__enter__()
        clients.append(client)
        return Site(client, settings)

    yield build
    for c in reversed(clients):
        c.__exit__(None, None, None)


@pytest.fixture
def site(make_site: Callable[..., Site]) -> Site:
    return make_site()


# ------------------------------------------------------------------------------------------ real browser


@dataclass
class LiveSite:
    """The site served by uvicorn on 127.0.0.1 (a free port), for a real browser."""

    url: str
    settings: Any
    app: Any

    @property
    def services(self) -> Any:
        return self.app.state.services

    def new_key(self, tier: str = "free", name: str = "browser tester") -> str:
        return issue_key(self.services.store, self.services.audit, self.settings, name=name, tier=tier).key


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def live_site(tmp_path: Path) -> Iterator[Callable[..., LiveSite]]:
    """Start the site under uvicorn in a thread; returns when it answers (the startup event, no sleep)."""
    import uvicorn

    servers: list[tuple[uvicorn.Server, threading.Thread]] = []

    def start(**overrides: Any) -> LiveSite:
        settings = make_settings(tmp_path, **overrides)
        app = create_site(settings)
        port = _free_port()
        server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning",
                                               lifespan="on"))
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        started = threading.Event()

        def wait() -> None:
            while thread.is_alive() and not server.started:
                started.wait(0.02)

        wait()
        assert server.started, "uvicorn did not start"
        servers.append((server, thread))
        return LiveSite(f"http://127.0.0.1:{port}", settings, app)

    yield start
    for server, thread in servers:
        server.should_exit = True
        thread.join(timeout=30)


@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    """Debian's Chromium through Playwright (a browser download cannot work here); skipped where it is absent.

    Per module, not per session: Playwright's sync API keeps an asyncio loop marked running in this thread
    while it is open, and the next test file in the same worker may call ``asyncio.run`` itself."""
    if not CHROMIUM.exists():
        pytest.skip("no /usr/bin/chromium (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        yield browser
        browser.close()


@pytest.fixture
def browser_page(chromium: Any) -> Iterator[Any]:
    """A fresh browser context (no cookies) and page, desktop size."""
    context = chromium.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    yield page
    context.close()


def shot(page: Any, name: str) -> Path:
    """Save a full-page screenshot under the artifacts folder CI keeps."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def sign_in_browser(page: Any, base: str, key: str) -> None:
    page.goto(f"{base}/signin")
    page.get_by_label("API key").fill(key)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(re.compile(r".*/boards.*"))
