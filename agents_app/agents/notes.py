"""The `notes` agent (offline, the default): notes on what the session has heard so far.

It reads the session's logged `tone`, `transcript`, `queue` and `environ` events and writes
a tone timeline, the notable shifts, the dominant affect per stretch, transcript excerpts
and the silences, one line at a time at AGENT_NOTES_PACE_S. It asks a person when it
cannot decide alone: which speaker to follow when several were detected, and what the
notes should cover when no audio has arrived yet.
"""

from __future__ import annotations

import asyncio
from collections import Counter, defaultdict
from collections.abc import AsyncIterator
from dataclasses import dataclass

from django.conf import settings

from agents_app.agents.base import AgentContext, AgentItem, Delta, InputField, InputRequest, Phase

AUDIO_EVENT_TYPES = frozenset({"tone", "speaker", "transcript", "queue", "environ"})
QUIET_LABELS = frozenset({"silence", "dead_air"})
ALL_SPEAKERS = "all"
# A shift smaller than this is ordinary variation, not worth a line.
NOTABLE_SHIFT = 0.3
# Affect is summarised over stretches of this many seconds of audio.
AFFECT_STRETCH_S = 30.0
# Long sessions would otherwise stream for minutes; each list says how much it left out.
MAX_TIMELINE_LINES = 40
MAX_SHIFT_LINES = 20
MAX_EXCERPTS = 25
MAX_QUIET_LINES = 20
EXCERPT_CHARS = 160


@dataclass(frozen=True)
class Heard:
    """The audio-derived events of a session, as their `data` dicts, in stream order."""

    tones: list[dict]
    transcripts: list[dict]
    quiet: list[dict]
    start_s: float
    end_s: float

    @property
    def is_empty(self) -> bool:
        return not (self.tones or self.transcripts or self.quiet)


def _seconds(data: dict, key: str) -> float:
    try:
        return float(data.get(key) or 0.0)
    except (TypeError, ValueError):
        return 0.0


def clock(seconds: float) -> str:
    whole = max(0, int(seconds))
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes:02d}:{secs:02d}"


def heard_from(events: list[dict]) -> Heard:
    audio = [e for e in events if e["type"] in AUDIO_EVENT_TYPES]
    by_start = sorted(audio, key=lambda e: (_seconds(e["data"], "start"), e["seq"]))
    return Heard(
        tones=[e["data"] for e in by_start if e["type"] == "tone"],
        transcripts=[
            e["data"] for e in by_start if e["type"] == "transcript" and str(e["data"].get("text", "")).strip()
        ],
        quiet=[
            e["data"] for e in by_start if e["type"] in ("queue", "environ") and e["data"].get("label") in QUIET_LABELS
        ],
        start_s=_seconds(by_start[0]["data"], "start") if by_start else 0.0,
        end_s=max((_seconds(e["data"], "end") for e in audio), default=0.0),
    )


def speakers_of(heard: Heard) -> list[str]:
    """Distinct speaker ids in order of first appearance."""
    seen: dict[str, None] = {}
    for data in [*heard.tones, *heard.transcripts]:
        speaker = data.get("speaker_id")
        if speaker not in (None, ""):
            seen.setdefault(str(speaker), None)
    return list(seen)


def following(heard: Heard, speaker: str) -> Heard:
    return Heard(
        tones=[t for t in heard.tones if str(t.get("speaker_id")) == speaker],
        transcripts=[t for t in heard.transcripts if str(t.get("speaker_id")) == speaker],
        quiet=heard.quiet,
        start_s=heard.start_s,
        end_s=heard.end_s,
    )


def _said_during(heard: Heard, start: float, end: float) -> str | None:
    for line in heard.transcripts:
        if _seconds(line, "start") <= end and _seconds(line, "end") >= start:
            return _excerpt(line)
    return None


def _excerpt(line: dict) -> str:
    text = " ".join(str(line.get("text", "")).split())
    return text if len(text) <= EXCERPT_CHARS else text[: EXCERPT_CHARS - 1] + "…"


def _more(left_out: int, what: str) -> list[str]:
    return [f"- … and {left_out} more {what}"] if left_out > 0 else []


def timeline_lines(heard: Heard) -> list[str]:
    """Consecutive readings with the same label, merged into one stretch each."""
    stretches: list[dict] = []
    for tone in heard.tones:
        label = str(tone.get("label", "unknown"))
        if stretches and stretches[-1]["label"] == label:
            stretches[-1]["end"] = max(stretches[-1]["end"], _seconds(tone, "end"))
            stretches[-1]["confidences"].append(_seconds(tone, "confidence"))
        else:
            stretches.append(
                {
                    "label": label,
                    "start": _seconds(tone, "start"),
                    "end": _seconds(tone, "end"),
                    "confidences": [_seconds(tone, "confidence")],
                }
            )
    lines = []
    for s in stretches[:MAX_TIMELINE_LINES]:
        n = len(s["confidences"])
        mean = sum(s["confidences"]) / n
        readings = "1 reading" if n == 1 else f"{n} readings"
        lines.append(f"- {clock(s['start'])}–{clock(s['end'])} {s['label']} ({readings}, confidence {mean:.2f})")
    return lines + _more(len(stretches) - MAX_TIMELINE_LINES, "stretches")


def notable_shifts(heard: Heard) -> list[dict]:
    return [
        tone
        for tone in heard.tones
        if tone.get("shift_direction") in ("escalating", "de-escalating")
        and _seconds(tone, "shift_magnitude") >= NOTABLE_SHIFT
    ]


def shift_lines(heard: Heard) -> list[str]:
    shifts = notable_shifts(heard)
    if not shifts:
        return ["- none: the delivery held steady"]
    lines = []
    for tone in shifts[:MAX_SHIFT_LINES]:
        start, end = _seconds(tone, "start"), _seconds(tone, "end")
        line = (
            f"- {clock(start)} {tone['shift_direction']} to {tone.get('label', 'unknown')}"
            f" (magnitude {_seconds(tone, 'shift_magnitude'):.2f})"
        )
        said = _said_during(heard, start, end)
        lines.append(f'{line}: "{said}"' if said else line)
    return lines + _more(len(shifts) - MAX_SHIFT_LINES, "shifts")


def affect_lines(heard: Heard) -> list[str]:
    """The affect that covers most of each AFFECT_STRETCH_S stretch; equal neighbours merge."""
    weights: dict[int, Counter] = defaultdict(Counter)
    for tone in heard.tones:
        affect = str(tone.get("affect") or tone.get("label") or "unknown")
        start, end = _seconds(tone, "start"), _seconds(tone, "end")
        end = max(end, start + 0.001)
        index = int(start // AFFECT_STRETCH_S)
        while index * AFFECT_STRETCH_S < end:
            lo, hi = index * AFFECT_STRETCH_S, (index + 1) * AFFECT_STRETCH_S
            weights[index][affect] += min(end, hi) - max(start, lo)
            index += 1
    merged: list[dict] = []
    for index in sorted(weights):
        affect, _ = weights[index].most_common(1)[0]
        start, end = index * AFFECT_STRETCH_S, min((index + 1) * AFFECT_STRETCH_S, heard.end_s)
        if merged and merged[-1]["affect"] == affect and merged[-1]["index"] == index - 1:
            merged[-1].update(end=end, index=index)
            merged[-1]["weights"].update(weights[index])
        else:
            merged.append(
                {"affect": affect, "start": start, "end": end, "index": index, "weights": Counter(weights[index])}
            )
    lines = []
    for stretch in merged:
        share = stretch["weights"][stretch["affect"]] / max(sum(stretch["weights"].values()), 1e-9)
        lines.append(f"- {clock(stretch['start'])}–{clock(stretch['end'])} mostly {stretch['affect']} ({share:.0%})")
    return lines


def excerpt_lines(heard: Heard) -> list[str]:
    lines = []
    for line in heard.transcripts[:MAX_EXCERPTS]:
        speaker = line.get("speaker_id")
        who = f"{speaker}: " if speaker not in (None, "") else ""
        lines.append(f'- [{clock(_seconds(line, "start"))}] {who}"{_excerpt(line)}"')
    return lines + _more(len(heard.transcripts) - MAX_EXCERPTS, "lines")


def quiet_lines(heard: Heard) -> list[str]:
    if not heard.quiet:
        return ["- none detected"]
    spans: list[dict] = []
    for data in heard.quiet:
        start, end, label = _seconds(data, "start"), _seconds(data, "end"), str(data["label"])
        if spans and spans[-1]["label"] == label and start <= spans[-1]["end"] + 0.05:
            spans[-1]["end"] = max(spans[-1]["end"], end)
        else:
            spans.append({"label": label, "start": start, "end": end})
    total = sum(s["end"] - s["start"] for s in spans)
    lines = [
        f"- {clock(s['start'])}–{clock(s['end'])} {s['label'].replace('_', ' ')} ({s['end'] - s['start']:.1f} s)"
        for s in spans[:MAX_QUIET_LINES]
    ]
    share = f", {total / heard.end_s:.0%} of the audio" if heard.end_s else ""
    return [*lines, *_more(len(spans) - MAX_QUIET_LINES, "quiet stretches"), f"- in all {total:.1f} s quiet{share}"]


def summary_line(heard: Heard) -> str:
    labels = Counter(str(t.get("label", "unknown")) for t in heard.tones)
    shifts = notable_shifts(heard)
    if not labels:
        return "Overall: no tone readings yet."
    parts = [f"Overall: mostly {labels.most_common(1)[0][0]}"]
    if shifts:
        largest = max(shifts, key=lambda t: _seconds(t, "shift_magnitude"))
        parts.append(
            f"{len(shifts)} notable shift{'s' if len(shifts) != 1 else ''}, the largest at"
            f" {clock(_seconds(largest, 'start'))} ({largest['shift_direction']},"
            f" {_seconds(largest, 'shift_magnitude'):.2f})"
        )
    else:
        parts.append("no notable shifts")
    return "; ".join(parts) + "."


def notes_lines(
    heard: Heard, *, speakers: list[str], speaker: str | None, request: str, earlier_left_out: bool = False
) -> list[str]:
    """The whole text of the notes, as the lines that are streamed one by one."""
    who = f"{len(speakers)} speaker{'s' if len(speakers) != 1 else ''}" if speakers else "no speaker ids"
    lines = [f"Notes on this session: {clock(heard.end_s)} of audio, {len(heard.tones)} tone readings, {who}."]
    if earlier_left_out:
        lines.append(f"Only the most recent audio was read, from {clock(heard.start_s)} on; earlier audio is left out.")
    if speaker:
        lines.append(f"Following speaker {speaker}.")
    if request.strip():
        lines.append(f'Asked for: "{" ".join(request.split())}"')
    lines += ["", "Tone timeline", *(timeline_lines(heard) or ["- no tone readings"])]
    lines += ["", "Notable shifts", *shift_lines(heard)]
    if heard.tones:
        lines += ["", "Dominant affect", *affect_lines(heard)]
    if heard.transcripts:
        lines += ["", "What was said", *excerpt_lines(heard)]
    lines += ["", "Silences and dead air", *quiet_lines(heard), "", summary_line(heard)]
    return lines


def no_audio_lines(*, focus: str, request: str) -> list[str]:
    wanted = " ".join((focus or request).split()) or "the tone timeline, shifts, affect and silences"
    return [
        "No audio has reached this session yet, so there is nothing to take notes on.",
        f"Noted for when it does: {wanted}.",
        "Start the microphone, then ask for notes again; they will include the tone timeline,"
        " notable shifts, the dominant affect over time, what was said where a transcript exists,"
        " and the silences.",
    ]


async def _paced(lines: list[str]) -> AsyncIterator[AgentItem]:
    pace = settings.AGENT_NOTES_PACE_S
    for index, line in enumerate(lines):
        if index and pace > 0:
            await asyncio.sleep(pace)
        yield Delta(line + "\n")


def _read(events: list[dict]) -> tuple[Heard, list[str]]:
    heard = heard_from(events)
    return heard, speakers_of(heard)


def _write(
    heard: Heard, *, speakers: list[str], speaker: str | None, request: str, earlier_left_out: bool
) -> list[str]:
    followed = following(heard, speaker) if speaker else heard
    return notes_lines(followed, speakers=speakers, speaker=speaker, request=request, earlier_left_out=earlier_left_out)


async def notes_agent(context: AgentContext) -> AsyncIterator[AgentItem]:
    yield Phase("reading")
    # Up to AGENT_CONTEXT_MAX_EVENTS events to sort and summarise: that CPU work runs in a
    # thread, off the event loop that (in `serve`) also takes every session's audio.
    heard, speakers = await asyncio.to_thread(_read, context.events)
    if heard.is_empty:
        yield InputRequest(
            fields=(InputField("focus", "text", "What should the notes cover?"),),
            reason="The session has no audio yet.",
        )
        answer = await context.receive_input()
        yield Phase("writing")
        async for item in _paced(no_audio_lines(focus=str(answer.get("focus", "")), request=context.input)):
            yield item
        return

    speaker = None
    preface: list[str] = []
    if len(speakers) > 1:
        yield InputRequest(
            fields=(
                InputField(
                    "speaker", "choice", "Which speaker should the notes follow?", options=(*speakers, ALL_SPEAKERS)
                ),
            ),
            reason=f"{len(speakers)} speakers were detected: {', '.join(speakers)}.",
        )
        answer = await context.receive_input()
        chosen = str(answer.get("speaker", ALL_SPEAKERS))
        if chosen in speakers:
            speaker = chosen
        elif chosen != ALL_SPEAKERS:
            preface.append(f'"{chosen}" is not one of the detected speakers, so these notes cover everyone.')
    yield Phase("writing")
    lines = await asyncio.to_thread(
        _write,
        heard,
        speakers=speakers,
        speaker=speaker,
        request=context.input,
        earlier_left_out=context.earlier_events_left_out,
    )
    async for item in _paced(preface + lines):
        yield item
