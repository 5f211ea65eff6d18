"""The openai agent against a real local server speaking the streaming chat-completions protocol."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from channels.db import database_sync_to_async

from agents_app import errors
from agents_app.models import Message, MessageRole, Run, RunStatus
from tests.agents_app.conftest import alog, arun_row, arun_start, drained
from tests.processes import free_port

pytestmark = pytest.mark.django_db(transaction=True)


def _chunk(content: str | None = None, **delta) -> bytes:
    if content is not None:
        delta["content"] = content
    return b"data: " + json.dumps({"choices": [{"index": 0, "delta": delta}]}).encode() + b"\n\n"


class Upstream:
    """A local OpenAI-compatible server; `answer` picks how it responds to the next request."""

    def __init__(self) -> None:
        self.answer = "stream"
        self.requests: list[dict] = []
        self.release = threading.Event()
        upstream = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                upstream.requests.append({"path": self.path, "headers": dict(self.headers), "body": json.loads(body)})
                getattr(upstream, f"answer_{upstream.answer}")(self)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()

    @staticmethod
    def _start_stream(handler: BaseHTTPRequestHandler) -> None:
        handler.send_response(200)
        handler.send_header("Content-Type", "text/event-stream")
        handler.end_headers()

    def answer_stream(self, handler) -> None:
        self._start_stream(handler)
        for part in (
            _chunk(role="assistant"),
            b": keep-alive\n\n",
            _chunk("Hello"),
            _chunk(", "),
            _chunk("friend."),
            b'data: {"choices": [], "usage": {"total_tokens": 9}}\n\n',
            b"data: [DONE]\n\n",
        ):
            handler.wfile.write(part)
            handler.wfile.flush()

    def answer_not_found(self, handler) -> None:
        body = json.dumps({"error": {"message": "The model `nope` does not exist.", "type": "invalid_request_error"}})
        handler.send_response(404)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body.encode())

    def answer_server_error(self, handler) -> None:
        handler.send_response(500)
        handler.send_header("Content-Length", "17")
        handler.end_headers()
        handler.wfile.write(b"upstream exploded")

    def answer_not_json(self, handler) -> None:
        self._start_stream(handler)
        handler.wfile.write(_chunk("Hel") + b"data: {not json\n\n")

    def answer_no_choices(self, handler) -> None:
        self._start_stream(handler)
        handler.wfile.write(b'data: {"id": "x", "object": "chat.completion.chunk"}\n\n')

    def answer_error_chunk(self, handler) -> None:
        self._start_stream(handler)
        handler.wfile.write(_chunk("Hel") + b'data: {"error": {"message": "overloaded"}}\n\n')

    def answer_cut_off(self, handler) -> None:
        self._start_stream(handler)
        handler.wfile.write(_chunk("Hel"))

    def answer_stall(self, handler) -> None:
        self._start_stream(handler)
        handler.wfile.write(_chunk("Hel"))
        handler.wfile.flush()
        self.release.wait(timeout=30)


@pytest.fixture
def upstream(settings):
    server = Upstream()
    settings.OPENAI_BASE_URL = server.url
    settings.OPENAI_MODEL = "test-model"
    settings.OPENAI_API_KEY = "sk-test"
    settings.AGENT_OPENAI_TIMEOUT_S = 0.5
    yield server
    server.close()


async def _openai_run(session, pool, *, input: str = "What now?") -> tuple[Run, dict]:
    run = await arun_start(session=session, input=input, agent="openai")
    await pool.claim_once()
    await drained(pool, timeout=5)
    done = (await alog(session.id, "run.done"))[-1]["data"]
    return await arun_row(run.id), done


async def test_the_reply_is_streamed_with_the_conversation_as_context(amake_session, pool, upstream, settings):
    settings.OPENAI_BASE_URL = upstream.url + "/v1"
    session, _ = await amake_session(kind="agent")
    for role, content in ((MessageRole.USER, "Earlier question"), (MessageRole.ASSISTANT, "Earlier answer")):
        await database_sync_to_async(Message.objects.create)(session=session, role=role, content=content)

    run, done = await _openai_run(session, pool)

    assert run.status == RunStatus.DONE and run.error is None
    assert done["status"] == "done" and done["message"]["content"] == "Hello, friend."
    (request,) = upstream.requests
    assert request["path"] == "/v1/chat/completions"
    assert request["headers"]["Authorization"] == "Bearer sk-test"
    assert request["body"]["model"] == "test-model" and request["body"]["stream"] is True
    assert [(m["role"], m["content"]) for m in request["body"]["messages"][1:]] == [
        ("user", "Earlier question"),
        ("assistant", "Earlier answer"),
        ("user", "What now?"),
    ]
    assert request["body"]["messages"][0]["role"] == "system"
    phases = [e["data"]["phase"] for e in await alog(session.id, "run.status")]
    assert phases == ["connecting", "streaming"]


@pytest.mark.parametrize(
    ("answer", "code", "message", "partial"),
    [
        ("not_found", errors.UPSTREAM_ERROR, "HTTP 404: The model `nope` does not exist.", ""),
        ("server_error", errors.UPSTREAM_ERROR, "HTTP 500: upstream exploded", ""),
        ("not_json", errors.UPSTREAM_MALFORMED, "a chunk that is not JSON", "Hel"),
        ("no_choices", errors.UPSTREAM_MALFORMED, "without choices[0].delta", ""),
        ("error_chunk", errors.UPSTREAM_ERROR, "error mid-stream: overloaded", "Hel"),
        ("cut_off", errors.UPSTREAM_MALFORMED, "ended without [DONE]", "Hel"),
        ("stall", errors.UPSTREAM_TIMEOUT, "did not answer within 0.5 s", "Hel"),
    ],
)
async def test_upstream_failures_end_the_run_error_with_a_clear_message(
    amake_session, pool, upstream, answer, code, message, partial
):
    upstream.answer = answer
    session, _ = await amake_session(kind="agent")

    run, done = await _openai_run(session, pool)

    assert run.status == RunStatus.ERROR
    assert run.error["code"] == code and message in run.error["message"]
    assert done["status"] == "error" and done["error"] == run.error
    assert done["message"]["content"] == partial


async def test_an_unreachable_server_ends_the_run_error(amake_session, pool, settings):
    settings.OPENAI_BASE_URL = f"http://127.0.0.1:{free_port()}"
    settings.OPENAI_MODEL = "test-model"
    session, _ = await amake_session(kind="agent")

    run, done = await _openai_run(session, pool)

    assert run.status == RunStatus.ERROR
    assert run.error["code"] == errors.UPSTREAM_UNREACHABLE
    assert "Could not reach the model server" in run.error["message"]
    assert done["error"] == run.error


@pytest.mark.parametrize("missing", ["OPENAI_BASE_URL", "OPENAI_MODEL"])
async def test_missing_configuration_ends_the_run_error_naming_the_variable(
    amake_session, pool, upstream, settings, missing
):
    setattr(settings, missing, None)
    session, _ = await amake_session(kind="agent")

    run, done = await _openai_run(session, pool)

    assert run.status == RunStatus.ERROR
    assert run.error == {
        "code": errors.AGENT_NOT_CONFIGURED,
        "message": f"{missing} is not set; the openai agent needs it.",
    }
    assert done["status"] == "error" and done["error"] == run.error
    assert upstream.requests == []
