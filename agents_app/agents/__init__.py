"""The built-in agents, by the name a run asks for."""

from __future__ import annotations

from agents_app.agents.base import Agent
from agents_app.agents.notes import notes_agent
from agents_app.agents.openai_chat import openai_agent

AGENTS: dict[str, Agent] = {
    "notes": notes_agent,
    "openai": openai_agent,
}
