"""The live voice client at `/`, in Chromium with a WAV of speech as the microphone."""

from __future__ import annotations

import json
from datetime import timedelta

from django.conf import settings

from agents_app.models import Message, Run
from sessions_app.clock import utcnow
from sessions_app.models import Event, Session, Subscription
from sessions_app.services.lifecycle import reap_once
from tests.browser.conftest import SCREENSHOT_DIR, page_session, screenshot, set_hidden
from voice_app.annotation import TONE_LABELS
from voice_app.models import AudioStream, Feedback

FRAME_BYTES = settings.VOICE_SAMPLE_RATE * 2 // 10  # 100 ms of PCM16 mono
TONES = "#tones .tone-row"


def start_listening(page, server, *, tones: int = 2):
    page.goto(server.url + "/")
    page.click("#start")
    page.wait_for_function(f"document.querySelectorAll('{TONES}').length >= {tones}", timeout=30_000)
    return page_session(page)


def tone_seqs_on_screen(page) -> list[int]:
    return page.eval_on_selector_all(TONES, "rows => rows.map(row => Number(row.dataset.seq))")


def logged_tone_seqs(session_id) -> set[int]:
    return set(Event.objects.filter(session_id=session_id, type="tone").values_list("seq", flat=True))


def wait_until(page, condition, *, what: str, timeout_ms: int = 15_000):
    """Poll a database condition while the page keeps running."""
    waited = 0
    while not condition():
        assert waited < timeout_ms, f"timed out waiting for {what}"
        page.wait_for_timeout(100)
        waited += 100


def wait_until_let_go(page, session_id) -> None:
    """Until the server has released the hidden page's subscription and audio stream."""
    wait_until(
        page,
        lambda: (
            not Subscription.objects.filter(session_id=session_id).exists()
            and not AudioStream.objects.filter(session_id=session_id, closed_at__isnull=True).exists()
        ),
        what="the server to release the subscription and the stream",
    )


def test_binary_frames_go_out_and_tones_of_speech_appear(server, watch):
    watched = watch()
    page = watched.page
    session_id, _token = start_listening(page, server, tones=3)
    if SCREENSHOT_DIR:
        # The README's picture: past the calm opening into the questions, with notes written.
        page.wait_for_function(f"document.querySelectorAll('{TONES}').length >= 14", timeout=60_000)
        page.click("#notes-start")
        page.wait_for_selector("#runs .run[data-status='done']", timeout=60_000)
        screenshot(page, "client.png")

    assert page.inner_text("#status") == "Listening"
    audio = watched.sockets_to("audio")[-1]
    frames = audio.binary_frames()
    assert len(frames) >= 20
    assert {len(frame) for frame in frames} == {FRAME_BYTES}
    assert audio.text_frames() == []
    first = page.locator(TONES).last
    assert first.locator(".tone-label").text_content() in TONE_LABELS
    assert first.locator(".subtext").inner_text().strip()
    assert page.locator("#timeline .tl-tone").count() >= 3

    page.click("#stop")
    page.wait_for_selector("#status[data-state='ended']")
    wait_until(page, lambda: Session.objects.get(pk=session_id).state == "done", what="the session to end")
    on_screen = tone_seqs_on_screen(page)
    assert len(on_screen) == len(set(on_screen))
    assert set(on_screen) <= logged_tone_seqs(session_id)
    stream = AudioStream.objects.get(session_id=session_id)
    assert stream.bytes >= 20 * FRAME_BYTES


def test_hidden_tab_lets_go_and_resumes_after_its_last_seq(server, watch):
    watched = watch()
    page = watched.page
    session_id, token = start_listening(page, server)
    events_before = watched.sockets_to("events")[-1]

    set_hidden(page, True)
    page.wait_for_selector("#status[data-state='paused']")
    audio = watched.sockets_to("audio")[-1]
    wait_until(page, lambda: events_before.closed and audio.closed, what="both sockets to close")
    assert {"type": "close"} in audio.text_frames()
    wait_until_let_go(page, session_id)
    assert Session.objects.get(pk=session_id).state == "running"
    shown_while_visible = tone_seqs_on_screen(page)
    # Something happens while the tab is away: a feedback from another device.
    first_tone = min(shown_while_visible)
    response = server.api(
        "POST", f"/api/sessions/{session_id}/feedback", token=token, json={"seq": first_tone, "verdict": "up"}
    )
    assert response.status_code == 200, response.text
    missed_up_to = Session.objects.get(pk=session_id).last_seq

    set_hidden(page, False)
    page.wait_for_selector("#status[data-state='listening']", timeout=20_000)
    resumed = watched.sockets_to("events")[-1]
    assert resumed is not events_before
    after = int(resumed.url.split("after=")[1].split("&")[0])
    assert 0 < after < missed_up_to
    page.wait_for_selector(f"{TONES}[data-seq='{first_tone}'][data-verdict='up']")
    page.wait_for_function(
        f"document.querySelectorAll('{TONES}').length >= {len(shown_while_visible) + 2}", timeout=20_000
    )

    page.click("#stop")
    wait_until(page, lambda: Session.objects.get(pk=session_id).state == "done", what="the session to end")
    on_screen = tone_seqs_on_screen(page)
    assert len(on_screen) == len(set(on_screen)), "a tone was shown twice"
    logged = logged_tone_seqs(session_id)
    shown_through = max(on_screen)
    assert {seq for seq in logged if seq <= shown_through} == set(on_screen), "a tone was missed"
    assert len(watched.sockets_to("audio")) == 2


def test_a_server_restart_is_met_with_a_reconnect_that_resumes_after_its_last_seq(server, watch):
    watched = watch()
    page = watched.page
    session_id, _token = start_listening(page, server)
    page.evaluate(
        """() => {
            window.statesSeen = [];
            const status = document.querySelector("#status");
            new MutationObserver(() => window.statesSeen.push(status.dataset.state))
                .observe(status, { attributes: true, attributeFilter: ["data-state"] });
        }"""
    )

    server.restart()
    page.wait_for_function("window.statesSeen.includes('reconnecting')", timeout=30_000)
    page.wait_for_selector("#status[data-state='listening']", timeout=30_000)
    resumed = watched.sockets_to("events")[-1]
    assert int(resumed.url.split("after=")[1].split("&")[0]) > 0
    shown = len(tone_seqs_on_screen(page))
    page.wait_for_function(f"document.querySelectorAll('{TONES}').length >= {shown + 2}", timeout=20_000)

    page.click("#stop")
    wait_until(page, lambda: Session.objects.get(pk=session_id).state == "done", what="the session to end")
    on_screen = tone_seqs_on_screen(page)
    assert len(on_screen) == len(set(on_screen)), "a tone was shown twice"
    # While the server was down the browser reported its refused connections; nothing else.
    watched.errors[:] = [error for error in watched.errors if "ERR_CONNECTION_REFUSED" not in error]


def test_session_reaped_while_hidden_shows_a_calm_notice(server, watch):
    watched = watch()
    page = watched.page
    session_id, _token = start_listening(page, server, tones=1)

    set_hidden(page, True)
    wait_until_let_go(page, session_id)
    assert reap_once(now=utcnow() + timedelta(seconds=settings.SESSION_IDLE_TTL_S + 5)) == 1
    assert Session.objects.get(pk=session_id).error["code"] == "session_idle"

    set_hidden(page, False)
    notice = page.locator("#notice")
    notice.wait_for(state="visible")
    assert "Session timed out" in notice.inner_text()
    assert notice.get_attribute("data-tone") == "calm"
    assert page.inner_text("#status") == "Timed out"
    sockets = len(watched.sockets_to("events"))

    notice.get_by_role("button", name="Start a new session").click()
    page.wait_for_selector("#status[data-state='listening']", timeout=20_000)
    assert len(watched.sockets_to("events")) == sockets + 1
    assert page_session(page)[0] != session_id


def test_notes_run_streams_into_the_page_and_stops(server, watch):
    watched = watch()
    page = watched.page
    session_id, _token = start_listening(page, server, tones=3)

    page.click("#notes-start")
    run = page.locator("#runs .run").first
    run.wait_for()
    page.wait_for_function("document.querySelector('#runs .run-text')?.textContent.length > 0", timeout=20_000)
    page.click("#notes-stop")
    page.wait_for_selector("#runs .run[data-status='stopped']", timeout=20_000)

    stopped = Run.objects.get(session_id=session_id)
    assert stopped.status == "stopped"
    partial = Message.objects.get(run=stopped, role="assistant")
    assert partial.content and page.inner_text("#runs .run-text").strip() == partial.content.strip()
    assert page.locator("#notes-stop").is_hidden()


def test_feedback_round_trip_by_keyboard_alone(server, watch):
    watched = watch()
    page = watched.page
    page.goto(server.url + "/")

    def tab_to(selector: str, limit: int = 80) -> None:
        for _ in range(limit):
            if page.evaluate(f"document.activeElement?.matches({json.dumps(selector)}) ?? false"):
                return
            page.keyboard.press("Tab")
        raise AssertionError(f"Tab never reached {selector}")

    tab_to("#start")
    page.keyboard.press("Enter")
    page.wait_for_function(f"document.querySelectorAll('{TONES}').length >= 2", timeout=30_000)
    session_id, _token = page_session(page)
    # The newest reading is first in the list; keyboard users reach its buttons first.
    seq = tone_seqs_on_screen(page)[0]
    row = page.locator(f"{TONES}[data-seq='{seq}']")
    label = row.get_attribute("data-label")

    tab_to(f"{TONES}[data-seq='{seq}'] .fb-down")
    page.keyboard.press("Enter")
    assert page.evaluate("document.activeElement.matches('.fb-label')")
    correction = next(name for name in ("tense", "animated") if name != label)
    page.keyboard.press("Home")
    for _ in range(8):
        if page.evaluate("document.activeElement.value") == correction:
            break
        page.keyboard.press("ArrowDown")
    page.keyboard.press("Tab")
    page.keyboard.press("Enter")
    row.locator(".fb-status").filter(has_text="Marked wrong").wait_for()

    feedback = Feedback.objects.get(session_id=session_id, seq=seq)
    assert (feedback.verdict, feedback.label) == ("down", correction)
    logged = Event.objects.filter(session_id=session_id, type="tone.feedback").get()
    assert logged.data["seq"] == seq and logged.data["verdict"] == "down" and logged.data["label"] == correction
    assert row.get_attribute("data-verdict") == "down"
    assert row.locator(".fb-down").get_attribute("aria-pressed") == "true"
    assert page.evaluate("document.activeElement.matches('.fb-down')"), "focus is lost after saving"

    tab_to("#stop")
    page.keyboard.press("Enter")
    page.wait_for_selector("#status[data-state='ended']")
    assert Session.objects.get(pk=session_id).state == "done"


def test_new_tones_are_announced_politely_and_motion_follows_the_preference(server, watch):
    page = watch().page
    start_listening(page, server, tones=1)
    announcer = page.locator("#announcer")
    assert announcer.get_attribute("aria-live") == "polite"
    page.wait_for_function("document.querySelector('#announcer').textContent.includes('confident')")

    pulse = "getComputedStyle(document.querySelector('#status .status-dot')).animationName"
    assert page.evaluate(pulse) == "pulse"
    page.emulate_media(reduced_motion="reduce")
    assert page.evaluate(pulse) == "none"
