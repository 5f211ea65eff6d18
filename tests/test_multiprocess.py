"""Scale-out for real: two daphne web processes and two workers on one PostgreSQL and one Redis.

Subscribers on both web processes must see the same gap-free log, each run must be drained
exactly once, and ending the session from either process must close every socket.
"""

from __future__ import annotations

import asyncio
import functools
import json
import os
import uuid
from contextlib import ExitStack

import httpx
import psycopg
import pytest
import redis
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from tests.processes import LinnetProcess, free_port, migrate
from tests.services import require_service
from tests.waiting import until

pytestmark = [pytest.mark.slow, pytest.mark.multiprocess]

POSTGRES_ADMIN_URL = os.environ.get("LINNET_TEST_POSTGRES_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("LINNET_TEST_MULTIPROCESS_REDIS_URL", "redis://127.0.0.1:6379/13")


@pytest.fixture
def cluster_env():
    """A fresh PostgreSQL database and an empty Redis database for the cluster's processes."""
    require_service("PostgreSQL", POSTGRES_ADMIN_URL, 5432)
    require_service("Redis", REDIS_URL, 6379)
    name = f"linnet_cluster_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    redis.Redis.from_url(REDIS_URL).flushdb()
    base = POSTGRES_ADMIN_URL.rsplit("/", 1)[0].replace("postgresql://", "postgres://", 1)
    env = {"DATABASE_URL": f"{base}/{name}", "REDIS_URL": REDIS_URL}
    migrate(env)
    yield env
    with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    redis.Redis.from_url(REDIS_URL).flushdb()


async def collect_until_closed(url: str) -> tuple[list[dict], int]:
    """Every event envelope one subscriber receives, and the close code it saw."""
    events = []
    async with connect(url, open_timeout=10) as socket:
        try:
            async for frame in socket:
                message = json.loads(frame)
                if "seq" in message:
                    events.append(message)
        finally:
            code = socket.close_code
    return events, code


# Processes start, sweep and reap on a scale of seconds: wait long, and poll their HTTP API gently.
cluster_until = functools.partial(until, timeout=30, interval=0.1)


async def test_two_web_and_two_worker_processes_share_one_log_and_drain_each_run_once(cluster_env):
    web_ports = [free_port(), free_port()]
    with ExitStack() as stack:
        webs = [LinnetProcess("serve", "--no-worker", "--port", str(port), env=cluster_env) for port in web_ports]
        workers = [LinnetProcess("linnet_worker", env=cluster_env) for _ in range(2)]
        for process in (*webs, *workers):
            stack.callback(process.start().stop)
        for web, port in zip(webs, web_ports, strict=True):
            web.wait_for_port(port)
        a, b = (f"http://127.0.0.1:{port}" for port in web_ports)

        async with httpx.AsyncClient(timeout=10) as http:
            created = (await http.post(f"{a}/api/sessions", json={"kind": "agent"})).json()
            session_id, auth = created["id"], {"Authorization": f"Bearer {created['token']}"}
            subscriber_urls = [
                f"ws://127.0.0.1:{port}/ws/sessions/{session_id}/events?token={created['token']}"
                for port in (web_ports[0], web_ports[0], web_ports[1], web_ports[1])
            ]
            subscribers = [asyncio.create_task(collect_until_closed(url)) for url in subscriber_urls]

            async def subscribed() -> bool:
                session = (await http.get(f"{b}/api/sessions/{session_id}", headers=auth)).json()
                return session["subscribers"] == len(subscribers)

            await cluster_until(subscribed, what="every subscriber to count, whichever process holds it")

            first = (
                await http.post(f"{b}/api/sessions/{session_id}/runs", json={"input": "first"}, headers=auth)
            ).json()
            second = (
                await http.post(f"{a}/api/sessions/{session_id}/runs", json={"input": "second"}, headers=auth)
            ).json()

            async def waiting_for_input() -> bool:
                session = (await http.get(f"{a}/api/sessions/{session_id}", headers=auth)).json()
                # The first run may ask too before its stop lands; only the second run's question is answered.
                asking = (session["pending_input"] or {}).get("run_id")
                return session["state"] == "input_required" and asking == second["id"]

            await cluster_until(waiting_for_input, what="the second run's notes agent to ask what to cover")
            answer = {"input": {"focus": "the plan for next week"}}
            assert (
                await http.post(f"{b}/api/sessions/{session_id}/input", json=answer, headers=auth)
            ).status_code == 200

            async def second_done() -> bool:
                run = (await http.get(f"{b}/api/sessions/{session_id}/runs/{second['id']}", headers=auth)).json()
                return run["status"] == "done"

            await cluster_until(second_done, what="the second run to finish")
            ended = (await http.delete(f"{b}/api/sessions/{session_id}", headers=auth)).json()
            received = await asyncio.wait_for(asyncio.gather(*subscribers), timeout=30)
            history = (await http.get(f"{a}/api/sessions/{session_id}/events?limit=1000", headers=auth)).json()
            first_run = (await http.get(f"{a}/api/sessions/{session_id}/runs/{first['id']}", headers=auth)).json()

    assert ended["state"] == "done"
    assert first_run["status"] == "stopped"
    log = history["events"]
    assert [e["seq"] for e in log] == list(range(1, history["last_seq"] + 1))
    for events, close_code in received:
        assert close_code == 1000
        assert events == log, "a subscriber's stream differs from the log"

    def count(event_type: str, run_id: str) -> int:
        return sum(1 for e in log if e["type"] == event_type and e["data"].get("run_id") == run_id)

    assert count("run.started", second["id"]) == 1
    assert count("run.done", second["id"]) == 1
    assert count("run.done", first["id"]) == 1
    first_done = next(e["seq"] for e in log if e["type"] == "run.done" and e["data"]["run_id"] == first["id"])
    second_started = next(e["seq"] for e in log if e["type"] == "run.started" and e["data"]["run_id"] == second["id"])
    assert first_done < second_started
    done = next(e for e in log if e["type"] == "run.done" and e["data"]["run_id"] == second["id"])
    assert "the plan for next week" in done["data"]["message"]["content"]
    assert log[-1]["type"] == "session.ended"


async def hold_open(url: str) -> int | None:
    """A subscriber that just listens until its connection goes away; returns the close code."""
    async with connect(url, open_timeout=10) as socket:
        try:
            async for _ in socket:
                pass
        except ConnectionClosed:
            pass
        return socket.close_code


async def test_a_killed_web_process_loses_its_subscribers_and_the_session_is_still_reaped(cluster_env):
    env = {**cluster_env, "PRESENCE_LEASE_TTL_S": "3", "SESSION_IDLE_TTL_S": "3", "SESSION_REAP_INTERVAL_S": "1"}
    doomed_port, survivor_port = free_port(), free_port()
    with ExitStack() as stack:
        doomed = LinnetProcess("serve", "--no-worker", "--port", str(doomed_port), env=env)
        survivor = LinnetProcess("serve", "--no-worker", "--port", str(survivor_port), env=env)
        worker = LinnetProcess("linnet_worker", env=env)
        for process in (doomed, survivor, worker):
            stack.callback(process.start().stop)
        doomed.wait_for_port(doomed_port)
        survivor.wait_for_port(survivor_port)
        base = f"http://127.0.0.1:{survivor_port}"

        async with httpx.AsyncClient(timeout=10) as http:
            created = (await http.post(f"{base}/api/sessions", json={})).json()
            url = f"{base}/api/sessions/{created['id']}"
            auth = {"Authorization": f"Bearer {created['token']}"}
            events_url = f"ws://127.0.0.1:{doomed_port}/ws/sessions/{created['id']}/events?token={created['token']}"
            listeners = [asyncio.create_task(hold_open(events_url)) for _ in range(2)]

            async def subscribers(expected: int) -> bool:
                return (await http.get(url, headers=auth)).json()["subscribers"] == expected

            await cluster_until(functools.partial(subscribers, 2), what="both subscribers to count")
            doomed.kill()
            codes = await asyncio.wait_for(asyncio.gather(*listeners), timeout=10)
            await cluster_until(
                functools.partial(subscribers, 0), what="the dead process's subscribers to stop counting"
            )

            async def reaped() -> bool:
                return (await http.get(url, headers=auth)).json()["state"] == "aborted"

            await cluster_until(reaped, what="the reaper to end the session nobody is watching")
            session = (await http.get(url, headers=auth)).json()

    assert all(code != 1000 for code in codes)
    assert session["error"]["code"] == "session_idle"
    assert session["last_subscriber_left_at"] is not None
