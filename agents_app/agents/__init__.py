"""The built-in agents, by the name a run asks for."""

from __future__ import annotations

from agents_app.agents.base import Agent
from agents_app.agents.notes import AUDIO_EVENT_TYPES, notes_agent
from agents_app.agents.openai_chat import openai_agent

AGENTS: dict[str, Agent] = {
    "notes": notes_agent,
    "openai": openai_agent,
}

# The session-log event types each agent reads (`AgentContext.events`); an agent not listed
# reads none, so a run loads nothing from the log it will not look at.
AGENT_EVENT_TYPES: dict[str, frozenset[str]] = {
    "notes": AUDIO_EVENT_TYPES,
}
