"""The voice_sidecar HTTP server: cf-voice's /classify and /health around the in-process classifier."""

from __future__ import annotations

import base64
import contextlib
import json
import socket
import threading
import time
from collections.abc import Iterator

import httpx
import numpy as np
import pytest

from tests.voice_app.conftest import SAMPLE_RATE, wav_pcm
from voice_app.classifier import ClassifierCache, SessionClassifier
from voice_app.sidecar_server import MAX_BODY_BYTES, SidecarServer

# A request timeout short enough for a test to wait it out, instead of the real 30 s.
SHORT_REQUEST_TIMEOUT_S = 0.5


@contextlib.contextmanager
def running_sidecar_server(**options) -> Iterator[SidecarServer]:
    server = SidecarServer(
        ("127.0.0.1", 0), classifiers=ClassifierCache(sample_rate=SAMPLE_RATE, confidence_threshold=0.1), **options
    )
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def sidecar_server():
    with running_sidecar_server() as server:
        yield server


def classify_body(pcm: bytes, *, timestamp: float = 0.0, session_id: str = "s-1", **extra) -> dict:
    return {
        "audio_chunk": base64.b64encode(pcm).decode(),
        "timestamp": timestamp,
        "elcor": False,
        "session_id": session_id,
        "language": "en",
        "num_speakers": None,
        **extra,
    }


def test_health_answers_ready(sidecar_server):
    response = httpx.get(f"{sidecar_server.url}/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ready", "sample_rate": SAMPLE_RATE, "sessions": 0}


def test_classify_answers_in_cf_voice_shape_and_matches_the_in_process_classifier(sidecar_server):
    audio = wav_pcm("loud_high", seconds=3)
    local = SessionClassifier(sample_rate=SAMPLE_RATE, elcor=True, confidence_threshold=0.1)
    with httpx.Client(base_url=sidecar_server.url) as client:
        for second in range(3):
            window = audio[second * 2 * SAMPLE_RATE : (second + 1) * 2 * SAMPLE_RATE]
            answer = client.post("/classify", json=classify_body(window, timestamp=float(second), elcor=True))
            assert answer.status_code == 200
            expected = local.classify(np.frombuffer(window, "<i2"), start=float(second), end=second + 1.0)
            assert [
                (e["event_type"], e["label"], e["confidence"], e["timestamp"]) for e in answer.json()["events"]
            ] == [(e.type, e.data["label"], e.data["confidence"], e.data["start"]) for e in expected]
    tones = [e for e in answer.json()["events"] if e["event_type"] == "tone"]
    assert tones and set(tones[0]) >= {
        "event_type",
        "label",
        "confidence",
        "speaker_id",
        "shift_magnitude",
        "timestamp",
    }


def test_each_session_has_its_own_classifier_and_the_oldest_are_forgotten():
    cache = ClassifierCache(sample_rate=SAMPLE_RATE, confidence_threshold=0.1, max_sessions=2)
    first = cache.get(session_id="a", elcor=False)
    second = cache.get(session_id="b", elcor=False)
    assert cache.get(session_id="a", elcor=False) is first  # "a" is now the most recently used
    assert second is not first
    cache.get(session_id="c", elcor=False)  # "b" goes

    assert len(cache) == 2
    assert cache.get(session_id="a", elcor=False) is first
    assert cache.get(session_id="b", elcor=False) is not second
    assert len(cache) == 2


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"{not json", "not valid JSON"),
        (b"[]", "JSON object"),
        (b'{"timestamp": 0}', "`audio_chunk` (base64 PCM16) is required"),
        (b'{"audio_chunk": "%%%"}', "not valid base64"),
        (b'{"audio_chunk": "AAAA"}', "whole 16-bit samples"),
        (b"[" * 5000, "not valid JSON"),
        (b'{"audio_chunk": "AAA=", "timestamp": "now"}', "`timestamp`"),
        (b'{"audio_chunk": "AAA=", "timestamp": NaN}', "`timestamp`"),
        (b'{"audio_chunk": "AAA=", "timestamp": Infinity}', "`timestamp`"),
        (b'{"audio_chunk": "AAA=", "timestamp": -1}', "`timestamp`"),
        (b'{"audio_chunk": "AAA=", "session_id": 5}', "`session_id`"),
        (b'{"audio_chunk": "AAA=", "elcor": "yes"}', "`elcor`"),
        (b'{"audio_chunk": "AAA=", "num_speakers": 1.5}', "`num_speakers`"),
    ],
)
def test_bad_classify_requests_get_400_with_a_clear_message(sidecar_server, body, message):
    response = httpx.post(f"{sidecar_server.url}/classify", content=body, headers={"Content-Type": "application/json"})

    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "invalid_request" and message in error["message"]


def test_oversized_bodies_unknown_paths_and_methods_get_json_errors(sidecar_server):
    host, port = sidecar_server.server_address[:2]
    with socket.create_connection((host, port), timeout=5) as raw:
        raw.sendall(f"POST /classify HTTP/1.1\r\nHost: x\r\nContent-Length: {MAX_BODY_BYTES + 1}\r\n\r\n{{}}".encode())
        head, _, body = raw.makefile("rb").read().partition(b"\r\n\r\n")
    unknown = httpx.get(f"{sidecar_server.url}/metrics")
    wrong_method = httpx.put(f"{sidecar_server.url}/classify", content=b"{}")

    assert head.startswith(b"HTTP/1.1 413") and json.loads(body)["error"]["code"] == "payload_too_large"
    assert (unknown.status_code, unknown.json()["error"]["code"]) == (404, "not_found")
    assert wrong_method.status_code == 501 and "PUT" in wrong_method.json()["error"]["message"]


@pytest.mark.parametrize(
    "sent",
    [b"", b'POST /classify HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{"audio_chunk": '],
    ids=["nothing", "half_a_body"],
)
def test_a_client_that_stops_sending_is_disconnected_after_the_request_timeout(sent):
    with running_sidecar_server(request_timeout_s=SHORT_REQUEST_TIMEOUT_S) as server:
        host, port = server.server_address[:2]
        with socket.create_connection((host, port), timeout=10 * SHORT_REQUEST_TIMEOUT_S) as raw:
            raw.sendall(sent)
            started = time.monotonic()
            assert raw.recv(1024) == b""  # the server closed the connection
            waited = time.monotonic() - started

        assert SHORT_REQUEST_TIMEOUT_S * 0.8 <= waited < 5 * SHORT_REQUEST_TIMEOUT_S
        assert httpx.get(f"{server.url}/health").status_code == 200
