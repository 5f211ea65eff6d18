"""`python -m bench --quick` keeps running: the reaper benchmark end to end on 50 sessions.

Benchmarks are not tests; this only keeps their code from rotting, so it asserts what the
run wrote, never how fast anything was.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent


def test_quick_reaper_bench_prints_and_writes_its_table(tmp_path):
    completed = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--only", "reaper", "--no-redis", "--results-dir", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=180,
    )

    assert completed.returncode == 0, completed.stdout + completed.stderr
    [written] = tmp_path.glob("*.json")
    body = json.loads(written.read_text())
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
