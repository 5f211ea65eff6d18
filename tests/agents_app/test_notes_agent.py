"""The notes agent: what it writes follows the session's events, and it asks where a person would be asked."""

from __future__ import annotations

import threading
import uuid

import pytest

from agents_app.agents import notes as notes_module
from agents_app.agents.base import AgentContext, Delta, InputRequest, Phase
from agents_app.agents.notes import notes_agent
from sessions_app.models import Session


def _event(seq: int, type_: str, **data) -> dict:
    return {"seq": seq, "type": type_, "ts": 0.0, "data": data}


def _tone(seq, label, start, end, *, speaker="S1", direction="stable", magnitude=0.0, affect=None, confidence=0.8):
    return _event(
        seq,
        "tone",
        label=label,
        confidence=confidence,
        speaker_id=speaker,
        shift_direction=direction,
        shift_magnitude=magnitude,
        affect=affect or label,
        start=start,
        end=end,
    )


class Conversation:
    """Runs the agent to its end, answering each input request from a list."""

    def __init__(
        self, events: list[dict], *, answers: list[dict] = (), request: str = "", earlier_left_out: bool = False
    ) -> None:
        self.events = events
        self.earlier_left_out = earlier_left_out
        self.answers = list(answers)
        self.request = request
        self.questions: list[InputRequest] = []
        self.phases: list[str] = []

    async def receive_input(self) -> dict:
        return self.answers.pop(0)

    async def notes(self) -> str:
        context = AgentContext(
            run_id=uuid.uuid4(),
            session=Session(),
            input=self.request,
            messages=[],
            events=self.events,
            receive_input=self.receive_input,
            earlier_events_left_out=self.earlier_left_out,
        )
        text = []
        async for item in notes_agent(context):
            if isinstance(item, Delta):
                text.append(item.text)
            elif isinstance(item, Phase):
                self.phases.append(item.phase)
            elif isinstance(item, InputRequest):
                self.questions.append(item)
        return "".join(text)


@pytest.fixture(autouse=True)
def no_pace(settings):
    settings.AGENT_NOTES_PACE_S = 0


A_MEETING = [
    _tone(1, "calm", 0, 10),
    _tone(2, "calm", 10, 20),
    _event(3, "transcript", text="Let's look at the numbers.", speaker_id="S1", start=19, end=22),
    _tone(4, "tense", 20, 25, direction="escalating", magnitude=0.72, affect="irritated"),
    _event(5, "queue", label="silence", confidence=0.9, start=25, end=31),
    _event(6, "environ", label="dead_air", confidence=0.9, start=31, end=33),
    _tone(7, "subdued", 33, 40, direction="de-escalating", magnitude=0.41, affect="tired"),
    _event(8, "environ", label="noise_floor_change", confidence=0.5, start=40, end=41),
]


async def test_notes_are_built_from_the_sessions_events():
    conversation = Conversation(A_MEETING, request="focus on tension")
    notes = await conversation.notes()

    assert conversation.questions == []
    assert conversation.phases == ["reading", "writing"]
    assert notes.startswith("Notes on this session: 00:41 of audio, 4 tone readings, 1 speaker.")
    assert 'Asked for: "focus on tension"' in notes
    assert "- 00:00–00:20 calm (2 readings, confidence 0.80)" in notes
    assert "- 00:20–00:25 tense (1 reading, confidence 0.80)" in notes
    assert '- 00:20 escalating to tense (magnitude 0.72): "Let\'s look at the numbers."' in notes
    assert "- 00:33 de-escalating to subdued (magnitude 0.41)" in notes
    assert "- 00:00–00:30 mostly calm" in notes and "- 00:30–00:41 mostly tired" in notes
    assert '- [00:19] S1: "Let\'s look at the numbers."' in notes
    assert "- 00:25–00:31 silence (6.0 s)" in notes and "- 00:31–00:33 dead air (2.0 s)" in notes
    assert "- in all 8.0 s quiet, 20% of the audio" in notes
    assert "noise" not in notes
    assert notes.rstrip().endswith("Overall: mostly calm; 2 notable shifts, the largest at 00:20 (escalating, 0.72).")


async def test_different_events_make_different_notes():
    steady = [_tone(1, "animated", 0, 5), _tone(2, "animated", 5, 12, direction="escalating", magnitude=0.1)]

    notes = await Conversation(steady).notes()

    assert notes != await Conversation(A_MEETING).notes()
    assert "00:12 of audio, 2 tone readings" in notes
    assert "- 00:00–00:12 animated (2 readings" in notes
    assert "- none: the delivery held steady" in notes
    assert "What was said" not in notes
    assert "Silences and dead air\n- none detected" in notes


async def test_several_speakers_make_the_notes_ask_whom_to_follow():
    events = [
        _tone(1, "calm", 0, 5, speaker="S1"),
        _event(2, "transcript", text="first speaker here", speaker_id="S1", start=0, end=5),
        _tone(3, "tense", 5, 9, speaker="S2", direction="escalating", magnitude=0.5),
        _event(4, "transcript", text="second speaker here", speaker_id="S2", start=5, end=9),
    ]
    conversation = Conversation(events, answers=[{"speaker": "S2"}])

    notes = await conversation.notes()

    (question,) = conversation.questions
    assert question.as_json() == {
        "fields": [
            {
                "name": "speaker",
                "type": "choice",
                "label": "Which speaker should the notes follow?",
                "options": ["S1", "S2", "all"],
            }
        ],
        "reason": "2 speakers were detected: S1, S2.",
    }
    assert "Following speaker S2." in notes
    assert "second speaker here" in notes and "first speaker here" not in notes
    assert "calm" not in notes


async def test_an_answer_that_names_no_speaker_covers_everyone():
    events = [_tone(1, "calm", 0, 5, speaker="S1"), _tone(2, "tense", 5, 9, speaker="S2")]

    notes = await Conversation(events, answers=[{"speaker": "S9"}]).notes()

    assert notes.startswith('"S9" is not one of the detected speakers, so these notes cover everyone.')
    assert "calm" in notes and "tense" in notes


async def test_without_audio_the_notes_ask_what_to_cover():
    conversation = Conversation(
        [_event(1, "session.state", state="running")], answers=[{"focus": "the pricing debate"}]
    )

    notes = await conversation.notes()

    (question,) = conversation.questions
    assert [f.name for f in question.fields] == ["focus"]
    assert question.reason == "The session has no audio yet."
    assert notes.startswith("No audio has reached this session yet")
    assert "Noted for when it does: the pricing debate." in notes


async def test_notes_say_when_earlier_audio_was_left_out():
    latest = [_tone(1, "calm", 3600, 3610), _tone(2, "tense", 3610, 3620)]

    notes = await Conversation(latest, earlier_left_out=True).notes()
    complete = await Conversation(latest).notes()

    assert "Only the most recent audio was read, from 1:00:00 on; earlier audio is left out." in notes
    assert "left out" not in complete


async def test_reading_and_writing_the_notes_run_off_the_event_loop(monkeypatch):
    threads: dict[str, set[int]] = {"read": set(), "write": set()}

    def watched(name, fn):
        def run(*args, **kwargs):
            threads[name].add(threading.get_ident())
            return fn(*args, **kwargs)

        return run

    monkeypatch.setattr(notes_module, "heard_from", watched("read", notes_module.heard_from))
    monkeypatch.setattr(notes_module, "notes_lines", watched("write", notes_module.notes_lines))

    assert "Overall:" in await Conversation(A_MEETING).notes()

    loop_thread = threading.get_ident()
    assert threads["read"] and loop_thread not in threads["read"]
    assert threads["write"] and loop_thread not in threads["write"]
