"""`/sessions/{id}/`: a session reopened from its log, live where it still runs."""

from __future__ import annotations

import json

from sessions_app.services.events import events_append
from sessions_app.services.sessions import session_end, session_open
from tests.browser.conftest import log_in
from voice_app.annotation import tone_annotation

TONES = "#tones .tone-row"


def tone(label: str, start: float, *, shift: str = "stable") -> tuple[str, dict]:
    data = {
        "label": label,
        "confidence": 0.8,
        "speaker_id": "S1",
        "shift_magnitude": 0.4 if shift != "stable" else 0.0,
        "shift_direction": shift,
        "prosody_flags": ["rising_end"] if label == "questioning" else [],
        "start": start,
        "end": start + 1.0,
        **tone_annotation(label=label, confidence=0.8, shift_direction=shift, elcor=False),
    }
    return ("tone", data)


def finished_session():
    session, token = session_open(window_ms=1000)
    run_id = "5b1c0a52-6f7e-4d0e-9a40-3f2c56c1e2aa"
    events_append(
        session_id=session.id,
        items=[
            tone("calm", 0.0),
            tone("tense", 1.0, shift="escalating"),
            (
                "transcript",
                {"text": "we need the budget", "speaker_id": "S1", "start": 1.0, "end": 2.0, "final": False},
            ),
            (
                "transcript",
                {"text": "we need the budget today", "speaker_id": "S1", "start": 1.0, "end": 2.2, "final": True},
            ),
            tone("questioning", 2.0),
            ("queue", {"label": "silence", "confidence": 0.9, "start": 3.0, "end": 4.0}),
            ("run.started", {"run_id": run_id, "agent": "notes", "input": "notes"}),
            ("run.delta", {"run_id": run_id, "text": "Calm, then "}),
            ("run.delta", {"run_id": run_id, "text": "tense."}),
            (
                "run.done",
                {
                    "run_id": run_id,
                    "status": "done",
                    "message": {"id": 1, "role": "assistant", "content": "Calm, then tense."},
                },
            ),
        ],
    )
    events_append(session_id=session.id, items=[("tone.feedback", {"seq": 3, "verdict": "down", "label": "animated"})])
    session_end(session=session)
    return session, token


def test_a_finished_session_replays_from_its_log(server, watch):
    session, token = finished_session()
    page = watch().page
    page.goto(f"{server.url}/sessions/{session.id}/#token={token}")

    page.wait_for_selector("#status[data-state='finished']")
    labels = page.eval_on_selector_all(TONES, "rows => rows.map(row => row.dataset.label)")
    assert labels == ["questioning", "tense", "calm"]
    assert page.locator(f"{TONES}[data-seq='3']").get_attribute("data-verdict") == "down"
    assert page.locator("#transcript .line").count() == 1, "the final line replaces the interim one"
    assert "we need the budget today" in page.inner_text("#transcript")
    assert page.locator("#transcript .interim").count() == 0
    assert page.inner_text("#runs .run-text") == "Calm, then tense."
    assert "silence" in page.inner_text("#badges")
    assert page.locator("#timeline .tl-tone").count() == 3
    assert page.locator("#notes-start").is_hidden()
    assert token not in page.url, "the token stays out of the address bar"


def test_the_token_is_remembered_for_the_tab(server, watch):
    session, token = finished_session()
    page = watch().page
    page.goto(f"{server.url}/sessions/{session.id}/#token={token}")
    page.wait_for_selector("#status[data-state='finished']")
    page.goto(f"{server.url}/sessions/{session.id}/")
    page.wait_for_selector("#status[data-state='finished']")
    assert page.locator(TONES).count() == 3


def test_without_token_or_login_the_page_asks_for_the_link(server, watch):
    session, _token = finished_session()
    page = watch().page
    page.goto(f"{server.url}/sessions/{session.id}/")
    notice = page.locator("#notice")
    notice.wait_for(state="visible")
    assert "link" in notice.inner_text()
    assert page.locator("#session-view").is_hidden()


def test_staff_open_any_session_by_login(server, watch, browser):
    session, _token = finished_session()
    log_in(browser, server, staff=True)
    page = watch().page
    page.goto(f"{server.url}/sessions/{session.id}/")
    page.wait_for_selector("#status[data-state='finished']")
    assert page.locator(TONES).count() == 3


def test_a_run_in_flight_joins_live(server, watch):
    session, token = session_open()
    events_append(session_id=session.id, items=[tone("calm", 0.0), tone("animated", 1.0)])
    page = watch().page
    page.goto(f"{server.url}/sessions/{session.id}/#token={token}")
    page.wait_for_selector("#status[data-state='watching']")

    response = server.api("POST", f"/api/sessions/{session.id}/runs", token=token, json={"input": "notes"})
    assert response.status_code == 202, response.text
    page.wait_for_selector("#runs .run[data-status='running']", timeout=20_000)
    page.wait_for_selector("#runs .run[data-status='done']", timeout=30_000)
    assert "calm" in page.inner_text("#runs .run-text").lower()


def test_the_export_downloads_the_whole_session(server, watch):
    session, token = finished_session()
    page = watch().page
    page.goto(f"{server.url}/sessions/{session.id}/#token={token}")
    page.wait_for_selector("#status[data-state='finished']")
    with page.expect_download() as download:
        page.click("#export")
    path = download.value.path()
    exported = json.loads(open(path).read())
    assert exported["session"]["id"] == str(session.id)
    assert [e["type"] for e in exported["events"]].count("tone") == 3
    assert download.value.suggested_filename == f"linnet-session-{session.id}.json"


def test_unknown_session_is_a_404_page(server):
    response = server.api("GET", "/sessions/00000000-0000-4000-8000-000000000000/")
    assert response.status_code == 404
    assert "text/html" in response.headers["content-type"]
