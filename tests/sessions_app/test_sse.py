import json

import pytest
from asgiref.testing import ApplicationCommunicator
from channels.db import database_sync_to_async

from sessions_app.models import Subscription
from sessions_app.services.events import events_append_one
from sessions_app.services.sessions import session_end

pytestmark = pytest.mark.django_db(transaction=True)

append = database_sync_to_async(events_append_one)


class SseReader:
    """An SSE client on the real ASGI application: parses frames, disconnects like a browser."""

    def __init__(self, path: str, headers: dict | None = None) -> None:
        from linnet_site.asgi import application

        raw_path, _, query = path.partition("?")
        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "GET",
            "scheme": "http",
            "path": raw_path,
            "raw_path": raw_path.encode(),
            "query_string": query.encode(),
            "root_path": "",
            "headers": [(b"host", b"testserver")]
            + [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()],
            "client": ("127.0.0.1", 5000),
            "server": ("testserver", 80),
        }
        self.communicator = ApplicationCommunicator(application, scope)
        self.buffer = ""
        self.finished = False

    async def start(self) -> tuple[int, dict]:
        await self.communicator.send_input({"type": "http.request", "body": b"", "more_body": False})
        start = await self.communicator.receive_output(5)
        headers = {k.decode().lower(): v.decode() for k, v in start["headers"]}
        return start["status"], headers

    async def body(self) -> bytes:
        chunks = []
        while True:
            message = await self.communicator.receive_output(5)
            chunks.append(message.get("body", b""))
            if not message.get("more_body"):
                return b"".join(chunks)

    async def frame(self, timeout: float = 5) -> dict:
        while "\n\n" not in self.buffer:
            if self.finished:
                raise StopAsyncIteration
            message = await self.communicator.receive_output(timeout)
            self.buffer += message.get("body", b"").decode()
            self.finished = not message.get("more_body", False)
        raw, self.buffer = self.buffer.split("\n\n", 1)
        frame: dict = {}
        for line in raw.split("\n"):
            if line.startswith(":"):
                frame["comment"] = line[1:].strip()
                continue
            key, _, value = line.partition(": ")
            frame[key] = value
        if "data" in frame:
            frame["data"] = json.loads(frame["data"])
        return frame

    async def events_until_boundary(self) -> list[dict]:
        frames = []
        while True:
            frame = await self.frame()
            if frame.get("event") == "replay.complete":
                return frames
            if "id" in frame:
                frames.append(frame)

    async def close(self) -> None:
        await self.communicator.send_input({"type": "http.disconnect"})
        await self.communicator.wait(5)


async def open_stream(session, token, *, headers=None, query=""):
    reader = SseReader(f"/api/sessions/{session.id}/stream?token={token}{query}", headers)
    status, response_headers = await reader.start()
    assert status == 200
    assert response_headers["content-type"] == "text/event-stream"
    return reader


async def test_stream_replays_then_streams_live_with_ids_and_types(amake_session):
    session, token = await amake_session()
    await append(session_id=session.id, type="tone", data={"label": "calm"})
    reader = await open_stream(session, token)

    replayed = await reader.events_until_boundary()
    await append(session_id=session.id, type="tone", data={"label": "tense"})
    live = await reader.frame()

    assert [(f["id"], f["event"]) for f in replayed] == [("1", "session.state"), ("2", "tone"), ("3", "session.state")]
    assert replayed[1]["data"]["data"] == {"label": "calm"}
    assert (live["id"], live["event"], live["data"]["data"]) == ("4", "tone", {"label": "tense"})
    assert live["data"]["seq"] == 4
    await reader.close()


async def test_stream_resumes_after_last_event_id(amake_session):
    session, token = await amake_session()
    for i in range(4):
        await append(session_id=session.id, type="tone", data={"i": i})
    reader = await open_stream(session, token, headers={"Last-Event-ID": "3"})

    replayed = await reader.events_until_boundary()

    assert [f["id"] for f in replayed] == ["4", "5", "6"]
    await reader.close()


async def test_stream_resumes_after_query_parameter(amake_session):
    session, token = await amake_session()
    for i in range(3):
        await append(session_id=session.id, type="tone", data={"i": i})
    reader = await open_stream(session, token, query="&after=2")

    replayed = await reader.events_until_boundary()

    assert [f["id"] for f in replayed] == ["3", "4", "5"]
    await reader.close()


async def test_stream_sends_ping_comment_when_quiet(amake_session, settings):
    settings.SSE_PING_INTERVAL_S = 0.05
    session, token = await amake_session()
    reader = await open_stream(session, token)
    await reader.events_until_boundary()

    assert (await reader.frame()) == {"comment": "ping"}
    await reader.close()


async def test_stream_counts_as_subscriber_until_closed(amake_session):
    session, token = await amake_session()
    reader = await open_stream(session, token)
    await reader.events_until_boundary()
    assert await database_sync_to_async(Subscription.objects.filter(session=session).count)() == 1

    await reader.close()
    assert await database_sync_to_async(Subscription.objects.filter(session=session).count)() == 0


async def test_stream_of_ended_session_replays_and_finishes(amake_session):
    session, token = await amake_session()
    await database_sync_to_async(session_end)(session=session)
    reader = await open_stream(session, token)

    replayed = await reader.events_until_boundary()
    assert replayed[-1]["event"] == "session.ended"
    with pytest.raises(StopAsyncIteration):
        await reader.frame()


@pytest.mark.parametrize("query", ["&after=abc", "&after=99"])
async def test_bad_after_on_stream_is_400_envelope(amake_session, query):
    session, token = await amake_session()
    reader = SseReader(f"/api/sessions/{session.id}/stream?token={token}{query}")
    status, _ = await reader.start()
    assert status == 400
    assert json.loads(await reader.body())["error"]["code"] == "invalid_request"


async def test_stream_without_token_is_401(amake_session):
    session, _ = await amake_session()
    reader = SseReader(f"/api/sessions/{session.id}/stream")
    status, _ = await reader.start()
    assert status == 401
    assert json.loads(await reader.body())["error"]["code"] == "unauthorized"
