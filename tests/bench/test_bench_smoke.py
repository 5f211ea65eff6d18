"""`python -m bench --quick` keeps running: the reaper benchmark end to end on 50 sessions, and
the audio ladder with its load process against a real server.

Benchmarks are not tests; this only keeps their code from rotting, so it asserts what the
run wrote, never how fast anything was.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent.parent


def quick_bench(name: str, results_dir: Path) -> tuple[subprocess.CompletedProcess, dict]:
    """`python -m bench --quick --only NAME` in a subprocess: what it printed and the JSON it wrote."""
    completed = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--only", name, "--no-redis", "--results-dir", str(results_dir)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
    [written] = results_dir.glob("*.json")
    return completed, json.loads(written.read_text())


def test_quick_reaper_bench_prints_and_writes_its_table(tmp_path):
    completed, body = quick_bench("reaper", tmp_path)
    assert body["machine"]["nproc"]
    assert [r["name"] for r in body["results"]] == [
        "reap pass, 50 sessions, 2 idle",
        "reap pass, 50 sessions, none idle",
        "GC pass, 50 sessions, 1 stale",
        "GC pass, 50 sessions, none stale",
    ]
    assert all(isinstance(r["value"], float) and isinstance(r["baseline"], float) for r in body["results"])
    assert body["results"][0]["details"]["reaped"] == 2
    assert "reap pass, 50 sessions, 2 idle" in completed.stdout
    assert "| reap pass, 50 sessions, 2 idle |" in (tmp_path / "latest.md").read_text()


@pytest.mark.slow
def test_quick_audio_bench_drives_its_ladder_from_a_load_process(tmp_path):
    completed, body = quick_bench("audio", tmp_path)
    sustained, in_server = body["results"]
    assert sustained["name"] == "real-time audio streams sustained (ack p99 ≤ 150 ms, none dropped)"
    first = sustained["details"]["ladder"][0]
    # Two streams, three seconds of 1 s windows each: the load process's measurements made it back.
    assert (first["streams"], first["windows_sent"], first["windows_dropped"], first["errors"]) == (2, 6, 0, 0)
    assert first["ack_p99_ms"] > 0
    assert first["events_received"] > 0
    assert in_server["name"] == "classifier cost per window (in the server, under load)"
    assert in_server["value"] > 0
    assert "2 streams: ack p50/p95/p99/max" in completed.stdout
    assert "| streams | ack p50 ms | ack p95 ms | ack p99 ms |" in (tmp_path / "latest.md").read_text()
