"""The `openai` agent: streams a reply from any OpenAI-compatible chat-completions server.

`POST {OPENAI_BASE_URL}/v1/chat/completions` with `stream: true` (a base URL that already
ends in `/v1`, as OpenAI's own clients expect, is used as it is), the session's
conversation as `messages`, and `Authorization: Bearer {OPENAI_API_KEY}` when a key is set
(local servers such as Ollama or llama.cpp need none). Every way the upstream can fail
becomes an `AgentError` with a message the person can act on, so a run never hangs on it.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import httpx
from django.conf import settings

from agents_app import errors
from agents_app.agents.base import AgentContext, AgentError, AgentItem, Delta, Phase

SYSTEM_PROMPT = (
    "You are the assistant of Linnet, a live voice session that annotates tone of voice. "
    "Answer the person helpfully and concisely."
)
# Enough of an upstream error body to explain it, not a whole HTML error page.
UPSTREAM_MESSAGE_CHARS = 300


def completions_url(base_url: str) -> str:
    base = base_url.rstrip("/")
    return f"{base}/chat/completions" if base.endswith("/v1") else f"{base}/v1/chat/completions"


def _required(name: str) -> str:
    value = getattr(settings, name, None)
    if not value:
        raise AgentError(errors.AGENT_NOT_CONFIGURED, f"{name} is not set; the openai agent needs it.")
    return value


def _upstream_message(status: int, body: bytes) -> str:
    text = body.decode("utf-8", errors="replace").strip()
    try:
        parsed = json.loads(text)
    except ValueError:
        parsed = None
    if isinstance(parsed, dict):
        error = parsed.get("error")
        if isinstance(error, dict) and error.get("message"):
            text = str(error["message"])
        elif isinstance(error, str):
            text = error
        elif parsed.get("message"):
            text = str(parsed["message"])
    text = " ".join(text.split())[:UPSTREAM_MESSAGE_CHARS] or "(empty body)"
    return f"The model server answered HTTP {status}: {text}"


def _content_of(payload: str) -> str | None:
    """The text of one `data:` chunk; AgentError when it is not a chat-completions chunk."""
    try:
        chunk = json.loads(payload)
    except ValueError:
        raise AgentError(
            errors.UPSTREAM_MALFORMED, f"The model server sent a chunk that is not JSON: {payload[:80]!r}"
        ) from None
    if isinstance(chunk, dict) and "error" in chunk:
        error = chunk["error"]
        message = error.get("message") if isinstance(error, dict) else error
        raise AgentError(errors.UPSTREAM_ERROR, f"The model server reported an error mid-stream: {message}")
    try:
        choices = chunk["choices"]
        if not choices:
            # Usage-only chunks (stream_options.include_usage) carry no choice.
            return None
        return choices[0]["delta"].get("content")
    except (KeyError, IndexError, TypeError, AttributeError):
        raise AgentError(
            errors.UPSTREAM_MALFORMED, f"The model server sent a chunk without choices[0].delta: {payload[:80]!r}"
        ) from None


async def openai_agent(context: AgentContext) -> AsyncIterator[AgentItem]:
    url = completions_url(_required("OPENAI_BASE_URL"))
    model = _required("OPENAI_MODEL")
    headers = {"Accept": "text/event-stream"}
    if settings.OPENAI_API_KEY:
        headers["Authorization"] = f"Bearer {settings.OPENAI_API_KEY}"
    body = {
        "model": model,
        "stream": True,
        "messages": [{"role": "system", "content": SYSTEM_PROMPT}, *context.messages],
    }
    timeout_s = settings.AGENT_OPENAI_TIMEOUT_S
    yield Phase("connecting")
    try:
        async with (
            httpx.AsyncClient(timeout=httpx.Timeout(timeout_s)) as client,
            client.stream("POST", url, json=body, headers=headers) as response,
        ):
            if response.status_code >= 400:
                raise AgentError(errors.UPSTREAM_ERROR, _upstream_message(response.status_code, await response.aread()))
            yield Phase("streaming")
            async for line in response.aiter_lines():
                if not line.startswith("data:"):
                    # Blank separators, `: keepalive` comments, `event:`/`id:` fields.
                    continue
                payload = line[len("data:") :].strip()
                if payload == "[DONE]":
                    return
                content = _content_of(payload)
                if content:
                    yield Delta(content)
    except httpx.TimeoutException:
        raise AgentError(
            errors.UPSTREAM_TIMEOUT, f"The model server at {url} did not answer within {timeout_s:g} s."
        ) from None
    except httpx.ConnectError as exc:
        raise AgentError(errors.UPSTREAM_UNREACHABLE, f"Could not reach the model server at {url}: {exc}") from None
    except httpx.HTTPError as exc:
        raise AgentError(errors.UPSTREAM_ERROR, f"The connection to the model server at {url} failed: {exc}") from None
    raise AgentError(
        errors.UPSTREAM_MALFORMED, "The model server's stream ended without [DONE]; the reply may be cut off."
    )
