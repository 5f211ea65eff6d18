"""Concurrent real-time audio streams one server process sustains, by the rule of ARCHITECTURE §10.

What runs:

- The server: `python -m bench.server` (bench/server.py), one process. It is Linnet's ASGI
  application under daphne with the options `manage.py serve` gives it, on the bench's
  environment (bench/environment.py): `DEBUG=0`, this run's temporary SQLite file, the
  in-memory channel layer (no `REDIS_URL`), default voice settings (16 kHz, 1,000 ms
  windows, the in-process classifier on its thread pool, no sidecar). Unlike `serve` it
  starts no worker loops (reaper, GC, sweep) and runs no `collectstatic`, and it adds the
  bench's `/ws/bench/` routes, which nothing here opens.
- The load: `python -m bench.audio_load` (bench/audio_load.py), a separate process per
  rung, asyncio and `websockets`. Each stream is a session opened over HTTP with an events
  socket reading everything and an audio socket sending 100 ms binary PCM16 frames at 1×
  from tests/fixtures/conversation.wav, each from its own offset and phase.

The ladder: LADDER streams (QUICK_LADDER with `--quick`), SECONDS of audio per stream per
rung, against the same server, stopping after the first rung that is not sustained. A rung
is sustained when, over every window of every stream:

1. no window was dropped (each was acked and counted by the `closed` summary) and no socket
   saw an error frame or failed;
2. the load process kept its own schedule (frame slip p99 ≤ CLIENT_SLIP_P99_LIMIT_MS);
   otherwise the rung is client-bound: neither passed nor a server failure;
3. window-complete → `ack` p99 ≤ ACK_P99_LIMIT_MS.

The result is the highest sustained rung. Beside each rung: the server's CPU while the
audio streamed (from /proc, in cores), the classifier's mean cost per window and the
windows the server skipped (from /metrics, this rung's share).

Baseline: the classifier alone (`SessionClassifier.classify`) on the same audio, one window
after another on one thread: its cost per window, and the streams one core could classify
(window length / cost).

The environment can change the ladder and the trial length, e.g. for a shorter full run:
LINNET_BENCH_AUDIO_LADDER=50,100,150 and LINNET_BENCH_AUDIO_SECONDS=8.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np
from django.conf import settings

from bench.audio_load import FIXTURE, FRAME_MS, fixture_pcm, load_summary
from bench.environment import ROOT, BenchContext
from bench.processes import BenchServer
from bench.report import Result, grid
from voice_app.classifier import SessionClassifier

LADDER = (50, 100, 150, 200, 250, 300, 350)
QUICK_LADDER = (2, 4)
SECONDS = 20
QUICK_SECONDS = 3
LADDER_ENV = "LINNET_BENCH_AUDIO_LADDER"
SECONDS_ENV = "LINNET_BENCH_AUDIO_SECONDS"
ACK_P99_LIMIT_MS = 150
# The client's lateness adds to every latency it measures and, past a point, lightens the
# load it was meant to apply; a third of the latency budget is as much as it may take.
CLIENT_SLIP_P99_LIMIT_MS = 50
BASELINE_WINDOWS = 200
QUICK_BASELINE_WINDOWS = 20
# Room for opening the sessions and sockets, closing and ending them, on top of the audio.
LOAD_PROCESS_SLACK_S = 120
CPU_SAMPLE_S = 0.25

SUSTAINED, FAILED, CLIENT_BOUND = "sustained", "failed", "client-bound"
RULE = (
    f"window-complete → ack p99 ≤ {ACK_P99_LIMIT_MS} ms over every window, none dropped, no error,"
    f" client frame slip p99 ≤ {CLIENT_SLIP_P99_LIMIT_MS} ms"
)
TABLE_HEADER = (
    "streams",
    "ack p50 ms",
    "ack p95 ms",
    "ack p99 ms",
    "ack max ms",
    "event p99 ms",
    "windows",
    "dropped",
    "errors",
    "client slip p99 ms",
    "client slip max ms",
    "server CPU (cores)",
    "classify ms/window",
    "result",
)


def rung_verdict(summary: dict) -> str:
    """SUSTAINED, FAILED or CLIENT_BOUND, by the rule in the module docstring."""
    if summary["windows_dropped"] or summary["errors"] or not summary["windows_sent"]:
        return FAILED
    if summary["client_slip_p99_ms"] > CLIENT_SLIP_P99_LIMIT_MS:
        return CLIENT_BOUND
    return SUSTAINED if summary["ack_p99_ms"] <= ACK_P99_LIMIT_MS else FAILED


def ladder_sustained(rungs: list[dict]) -> int:
    """The highest rung that was sustained, counting only up to the first that was not."""
    sustained = 0
    for rung in rungs:
        if rung["result"] != SUSTAINED:
            break
        sustained = rung["streams"]
    return sustained


def ladder_and_seconds(quick: bool) -> tuple[tuple[int, ...], float]:
    ladder = os.environ.get(LADDER_ENV)
    seconds = os.environ.get(SECONDS_ENV)
    return (
        tuple(int(streams) for streams in ladder.split(",")) if ladder else (QUICK_LADDER if quick else LADDER),
        float(seconds) if seconds else (QUICK_SECONDS if quick else SECONDS),
    )


def process_cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process, every thread included."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cores_between(samples: list[tuple[float, float]], began: float, ended: float) -> float | None:
    """Mean cores used between two wall-clock times, from (time, CPU seconds) samples."""
    inside = [sample for sample in samples if began <= sample[0] <= ended]
    if len(inside) < 2:
        return None
    (first_at, first_cpu), (last_at, last_cpu) = inside[0], inside[-1]
    return (last_cpu - first_cpu) / (last_at - first_at)


def audio_metrics(server: BenchServer) -> dict[str, float]:
    """The in-process classifier's time and window count, and the windows skipped, from /metrics."""
    text = httpx.get(f"{server.http_url}/metrics", timeout=10).text
    names = {
        "classify_s": r'linnet_audio_classify_seconds_sum\{classifier="in_process"\}',
        "classified": r'linnet_audio_classify_seconds_count\{classifier="in_process"\}',
        "skipped": r"linnet_audio_windows_skipped_total",
    }
    values = {}
    for key, pattern in names.items():
        match = re.search(rf"^{pattern} (\S+)$", text, re.M)
        values[key] = float(match.group(1)) if match else 0.0
    return values


def rung_run(server: BenchServer, *, streams: int, seconds: float, workdir: Path) -> dict:
    """One rung: the load process against the server, watched from here; its summary and the server's share."""
    out = workdir / f"audio-load-{streams}.json"
    command = [
        sys.executable,
        "-m",
        "bench.audio_load",
        f"--url={server.http_url}",
        f"--streams={streams}",
        f"--seconds={seconds:g}",
        f"--out={out}",
        f"--seed={streams}",
    ]
    metrics_before = audio_metrics(server)
    samples: list[tuple[float, float]] = []
    deadline = time.monotonic() + seconds + LOAD_PROCESS_SLACK_S + streams * 0.1
    with open(workdir / f"audio-load-{streams}.log", "w+") as log:
        load = subprocess.Popen(command, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
        try:
            while load.poll() is None:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"the audio load process for {streams} streams did not finish in time")
                samples.append((time.time(), process_cpu_s(server.pid)))
                try:
                    load.wait(timeout=CPU_SAMPLE_S)
                except subprocess.TimeoutExpired:
                    pass
        finally:
            if load.poll() is None:
                load.kill()
                load.wait()
        log.seek(0)
        if load.returncode != 0:
            raise RuntimeError(f"the audio load process failed ({load.returncode}):\n{log.read()[-3000:]}")
    measurements = json.loads(out.read_text())
    metrics_after = audio_metrics(server)
    classified = metrics_after["classified"] - metrics_before["classified"]
    summary = load_summary(measurements)
    client = measurements["client"]
    return {
        **summary,
        "result": rung_verdict(summary),
        "server_cores": cores_between(samples, client["streaming_began_at"], client["streaming_ended_at"]),
        "classify_ms": (metrics_after["classify_s"] - metrics_before["classify_s"]) / classified * 1000
        if classified
        else None,
        "windows_skipped_by_server": metrics_after["skipped"] - metrics_before["skipped"],
    }


def rung_row(rung: dict) -> list[str | float | None]:
    return [
        rung["streams"],
        rung["ack_p50_ms"],
        rung["ack_p95_ms"],
        rung["ack_p99_ms"],
        rung["ack_max_ms"],
        rung["event_p99_ms"],
        rung["windows_sent"],
        rung["windows_dropped"],
        rung["errors"],
        rung["client_slip_p99_ms"],
        rung["client_slip_max_ms"],
        rung["server_cores"],
        rung["classify_ms"],
        rung["result"],
    ]


def rung_line(rung: dict) -> str:
    def ms(value: float | None) -> str:
        return "-" if value is None else f"{value:.0f}"

    acks = "/".join(ms(rung[f"ack_{stat}_ms"]) for stat in ("p50", "p95", "p99", "max"))
    cores = "-" if rung["server_cores"] is None else f"{rung['server_cores']:.2f}"
    return (
        f"  {rung['streams']} streams: ack p50/p95/p99/max {acks} ms, event p99 {ms(rung['event_p99_ms'])} ms,"
        f" {rung['windows_sent']} windows, {rung['windows_dropped']} dropped, {rung['errors']} errors,"
        f" client slip p99 {ms(rung['client_slip_p99_ms'])} ms, server {cores} cores: {rung['result']}"
        + (f"; {rung['error_samples']}" if rung["error_samples"] else "")
    )


def classify_cost_alone(pcm: np.ndarray, windows: int) -> float:
    """Mean seconds per window of the classifier by itself, one window after another."""
    window = settings.VOICE_SAMPLE_RATE * settings.VOICE_WINDOW_MS // 1000
    classifier = SessionClassifier(sample_rate=settings.VOICE_SAMPLE_RATE)
    audio = np.resize(pcm, windows * window)
    window_s = settings.VOICE_WINDOW_MS / 1000
    started = time.perf_counter()
    for k in range(windows):
        classifier.classify(audio[k * window : (k + 1) * window], start=k * window_s, end=(k + 1) * window_s)
    return (time.perf_counter() - started) / windows


def run(ctx: BenchContext) -> list[Result]:
    ladder, seconds = ladder_and_seconds(ctx.quick)
    pcm_bytes, fixture_rate = fixture_pcm(FIXTURE)
    if fixture_rate != settings.VOICE_SAMPLE_RATE:
        raise RuntimeError(f"{FIXTURE} is {fixture_rate} Hz; the server takes {settings.VOICE_SAMPLE_RATE} Hz")
    alone_s = classify_cost_alone(
        np.frombuffer(pcm_bytes, dtype="<i2"), QUICK_BASELINE_WINDOWS if ctx.quick else BASELINE_WINDOWS
    )
    one_core_streams = (settings.VOICE_WINDOW_MS / 1000) / alone_s
    rungs: list[dict] = []
    with BenchServer(env=ctx.server_env(), workdir=ctx.workdir, name="audio") as server:
        for streams in ladder:
            rung = rung_run(server, streams=streams, seconds=seconds, workdir=ctx.workdir)
            rungs.append(rung)
            print(rung_line(rung), flush=True)
            if rung["result"] != SUSTAINED:
                break
        in_server = audio_metrics(server)
    sustained = ladder_sustained(rungs)
    table = {"title": "Audio ladder", "header": list(TABLE_HEADER), "rows": [rung_row(rung) for rung in rungs]}
    print(grid(table["header"], table["rows"]), flush=True)

    last = rungs[-1]
    if last["result"] == CLIENT_BOUND:
        ctx.note(
            f"audio: at {last['streams']} streams the load process fell behind its own schedule; "
            f"{sustained} is as far as this machine could drive the server, not necessarily the server's limit"
        )
    elif last["result"] == SUSTAINED and not ctx.quick:
        ctx.note(f"audio: every rung was sustained; {last['streams']} streams is the ladder's top, not the server's")
    if sustained == 0 and last["result"] == FAILED:
        ctx.note(f"audio: the first rung ({last['streams']} streams) was not sustained; the server sustains fewer")
    details = {
        "rule": RULE,
        "seconds_per_rung": seconds,
        "window_ms": settings.VOICE_WINDOW_MS,
        "frame_ms": FRAME_MS,
        "fixture": FIXTURE.name,
        "server": "python -m bench.server: daphne, DEBUG=0, SQLite, in-memory layer, no worker loops",
        "load": "python -m bench.audio_load, a separate process per rung",
        "ladder": rungs,
        "table": table,
    }
    in_server_s = in_server["classify_s"] / in_server["classified"] if in_server["classified"] else None
    return [
        Result(
            bench="audio",
            name=f"real-time audio streams sustained (ack p99 ≤ {ACK_P99_LIMIT_MS} ms, none dropped)",
            value=float(sustained),
            baseline=one_core_streams,
            units="streams",
            lower_is_better=False,
            details=details,
        ),
        Result(
            bench="audio",
            name="classifier cost per window (in the server, under load)",
            value=in_server_s * 1000 if in_server_s is not None else None,
            baseline=alone_s * 1000,
            units="ms",
            details={"baseline": "SessionClassifier.classify alone, one thread"},
        ),
    ]
