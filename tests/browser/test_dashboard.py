"""The staff live dashboard at /admin/live/, fed by /ws/admin/live."""

from __future__ import annotations

from tests.browser.conftest import SCREENSHOT_DIR, log_in, screenshot

OPEN_CONSOLE_SOCKET = """async url => await new Promise(resolve => {
    const socket = new WebSocket(url);
    socket.onclose = event => resolve(event.code);
})"""


def test_dashboard_updates_live_for_staff(server, watch, browser):
    log_in(browser, server, staff=True, superuser=True)
    page = watch().page
    page.goto(server.url + "/admin/")
    page.get_by_role("link", name="Live dashboard").click()
    page.wait_for_url("**/admin/live/")
    page.wait_for_selector(".linnet-live[data-state='live']")
    page.wait_for_function("document.querySelector('#live-sessions-live').textContent.trim() === '0'")

    for _ in range(3):
        assert server.api("POST", "/api/sessions", json={}).status_code == 201
    page.wait_for_function("document.querySelector('#live-sessions-live').textContent.trim() === '3'", timeout=10_000)
    assert "Pending\t3" in page.inner_text("#live-sessions-by-state")
    # The serve process itself is listed with its loops' last passes.
    page.wait_for_function("document.querySelectorAll('#live-processes tbody tr').length >= 1")
    assert "serve" in page.inner_text("#live-processes")
    page.wait_for_function("document.querySelector('#live-events-now').textContent.trim() !== '—'", timeout=10_000)
    if SCREENSHOT_DIR:
        # The README's picture: a client streaming beside the dashboard, the rate drawn over time.
        client = watch().page
        client.goto(server.url + "/")
        client.click("#start")
        page.bring_to_front()
        page.wait_for_function("document.querySelector('#live-audio-streams').textContent.trim() === '1'")
        page.wait_for_timeout(12_000)
        screenshot(page, "dashboard.png")
        client.click("#stop")


def test_dashboard_refuses_non_staff(server, watch, browser):
    log_in(browser, server, staff=False, username="sam")
    page = watch().page
    page.goto(server.url + "/admin/live/")
    assert "/admin/login/" in page.url
    code = page.evaluate(OPEN_CONSOLE_SOCKET, server.url.replace("http", "ws") + "/ws/admin/live")
    assert code == 4403


def test_dashboard_socket_refuses_anonymous(server, watch):
    page = watch().page
    page.goto(server.url + "/")
    code = page.evaluate(OPEN_CONSOLE_SOCKET, server.url.replace("http", "ws") + "/ws/admin/live")
    assert code == 4401
