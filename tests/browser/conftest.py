"""Browser tests: Playwright driving the system's Chromium against a real `serve` process.

The server shares the test database, so a test can arrange rows and check what the
browser's actions left behind. Chromium's microphone is a committed WAV of speech. Without
Chromium or Playwright these tests skip, and under LINNET_REQUIRE_SERVICES=1 they fail.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from tests.processes import ROOT, LinnetProcess, database_url_for_tests, free_port
from tests.services import REQUIRE_SERVICES

CHROMIUM = os.environ.get("LINNET_CHROMIUM", "/usr/bin/chromium")
SPEECH_WAV = ROOT / "tests" / "fixtures" / "conversation.wav"
# `make screenshots` sets this to refresh the README's pictures.
SCREENSHOT_DIR = os.environ.get("LINNET_SCREENSHOTS")

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def _require_browser():
    missing = None
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        missing = "the playwright package is not installed"
    if missing is None and not shutil.which(CHROMIUM):
        missing = f"Chromium is not installed at {CHROMIUM}"
    if missing:
        if REQUIRE_SERVICES:
            pytest.fail(f"{missing}, and LINNET_REQUIRE_SERVICES=1")
        pytest.skip(missing)


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    _require_browser()
    from playwright.sync_api import sync_playwright

    profile = tmp_path_factory.mktemp("chromium-profile")
    with sync_playwright() as playwright:
        # A persistent context is how Playwright takes a fresh --user-data-dir of our own.
        context = playwright.chromium.launch_persistent_context(
            str(profile),
            executable_path=CHROMIUM,
            headless=True,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--no-first-run",
                "--use-fake-ui-for-media-stream",
                "--use-fake-device-for-media-stream",
                f"--use-file-for-fake-audio-capture={SPEECH_WAV}",
            ],
            viewport={"width": 1200, "height": 900},
        )
        yield context
        context.close()


@pytest.fixture(autouse=True)
def _orm_beside_playwright(monkeypatch):
    # Playwright's sync API keeps an event loop marked running on this thread, so Django
    # refuses ORM calls here. Nothing runs on that loop while a test's own code does (the
    # loop only turns inside Playwright calls), so the ORM is safe to use between them.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")


@dataclass
class LiveServer:
    url: str
    process: LinnetProcess
    port: int
    env: dict

    def restart(self) -> None:
        """Stop the server and start it again on the same port and database."""
        assert self.process.stop() == 0, self.process.output()
        self.process = LinnetProcess("serve", "--port", str(self.port), env=self.env).start()
        self.process.wait_for_port(self.port)

    def api(self, method: str, path: str, *, token: str | None = None, **kwargs):
        import httpx

        headers = {"Authorization": f"Bearer {token}"} if token else {}
        response = httpx.request(method, self.url + path, headers=headers, timeout=10, **kwargs)
        return response


@pytest.fixture
def server(transactional_db) -> Iterator[LiveServer]:
    """`manage.py serve` on a free port, on this test's database."""
    port = free_port()
    env = {"DATABASE_URL": database_url_for_tests(), "DJANGO_SETTINGS_MODULE": "tests.browser.server_settings"}
    live = LiveServer(
        url=f"http://127.0.0.1:{port}",
        process=LinnetProcess("serve", "--port", str(port), env=env).start(),
        port=port,
        env=env,
    )
    try:
        live.process.wait_for_port(port)
        yield live
    finally:
        live.process.stop()


@dataclass
class SocketLog:
    """What one WebSocket of the page sent and whether it closed."""

    url: str
    sent: list = field(default_factory=list)
    closed: bool = False

    def text_frames(self) -> list[dict]:
        return [json.loads(frame) for frame in self.sent if isinstance(frame, str)]

    def binary_frames(self) -> list[bytes]:
        return [frame for frame in self.sent if isinstance(frame, bytes)]


@dataclass
class Watched:
    """A page with its console errors and WebSockets recorded."""

    page: object
    errors: list = field(default_factory=list)
    sockets: list = field(default_factory=list)

    def sockets_to(self, endpoint: str) -> list[SocketLog]:
        return [socket for socket in self.sockets if f"/{endpoint}" in socket.url.split("?")[0]]


@pytest.fixture
def watch(browser):
    """Open pages whose console errors fail the test at its end."""
    opened: list[Watched] = []

    def open_page() -> Watched:
        page = browser.new_page()
        watched = Watched(page)

        def on_console(message):
            if message.type == "error":
                watched.errors.append(message.text)

        def on_socket(ws):
            log = SocketLog(ws.url)
            watched.sockets.append(log)
            ws.on("framesent", lambda payload: log.sent.append(payload))
            ws.on("close", lambda _ws: setattr(log, "closed", True))

        page.on("console", on_console)
        page.on("pageerror", lambda error: watched.errors.append(f"uncaught: {error}"))
        page.on("websocket", on_socket)
        opened.append(watched)
        return watched

    yield open_page
    errors = [error for watched in opened for error in watched.errors]
    for watched in opened:
        watched.page.close()
    browser.clear_cookies()
    assert errors == [], f"console errors: {errors}"


def log_in(browser, server: LiveServer, *, staff: bool, superuser: bool = False, username: str = "pat") -> object:
    """A user logged in for the browser (Django's session cookie)."""
    user = get_user_model().objects.create_user(
        username, password="not-used-here", is_staff=staff or superuser, is_superuser=superuser
    )
    client = Client()
    client.force_login(user)
    browser.add_cookies([{"name": "sessionid", "value": client.cookies["sessionid"].value, "url": server.url}])
    return user


def set_hidden(page, hidden: bool) -> None:
    """Hide or show the tab as a phone does when the screen locks or another app comes forward.

    Headless Chromium keeps every tab visible, so the page's view of it is changed and the
    same `visibilitychange` event the browser would fire is dispatched.
    """
    page.evaluate(
        """hidden => {
            Object.defineProperty(document, "hidden", { configurable: true, get: () => hidden });
            Object.defineProperty(document, "visibilityState", {
                configurable: true, get: () => (hidden ? "hidden" : "visible"),
            });
            document.dispatchEvent(new Event("visibilitychange"));
        }""",
        hidden,
    )


def screenshot(page, name: str) -> None:
    if SCREENSHOT_DIR:
        Path(SCREENSHOT_DIR).mkdir(parents=True, exist_ok=True)
        # A tall viewport rather than a full-page capture, which would draw the sticky header
        # where the page happened to be scrolled.
        page.set_viewport_size({"width": 1200, "height": 1500})
        page.evaluate("window.scrollTo(0, 0)")
        page.screenshot(path=str(Path(SCREENSHOT_DIR) / name))


def page_session(page) -> tuple[str, str]:
    """The id and token of the session the live client opened (kept in sessionStorage)."""
    link = page.get_attribute("#session-link", "href")
    session_id = link.split("/")[2]
    token = page.evaluate("id => sessionStorage.getItem(`linnet.token.${id}`)", session_id)
    return session_id, token
