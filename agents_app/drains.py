"""Run drains: claim queued runs and drain their agents into the session log.

A `DrainPool` (one per worker process) runs up to AGENT_DRAIN_CONCURRENCY `RunDrain`s.
Each drain has two tasks:
- the pump iterates the agent and buffers what it yields; it never touches the database;
- the control loop is the drain's only writer, and writes by group commit: with nothing
  buffered it waits for the next item and writes it at once; whatever the pump buffered
  while that write was in flight goes into the next write, up to AGENT_DELTA_FLUSH_MAX
  items (a pump that gets that far ahead waits for the writer). No timer holds an item
  back: a quiet stream pays one write per item, and a busy one is batched by how long its
  writes take. Each write also renews the run's lease when due and reads back a stop or
  an input answer; with nothing to write the loop does that every AGENT_RUN_POLL_S, or as
  soon as a layer message says the run's row changed.

What this guarantees:
1. One writer per run: only the claim's winner drains it, and only its control loop writes.
2. Stored before published: a write stores the items and extends `Run.output` in one
   transaction and publishes them after it commits, so no subscriber sees a delta the log
   lacks, and the partial on record is what subscribers were sent.
3. A stop loses nothing: the pump never writes, so cancelling it drops nothing; what it
   had buffered (at most what arrived during the last write) goes into the run's final write.
4. The partial survives a kill: every write stores the output so far, so a run ended
   `interrupted` elsewhere keeps everything that was published.
5. `run.done` comes after the last delta: the run is ended only once the writer returned.
6. Items are written in the order the agent yielded them, so an input request follows the
   deltas before it and precedes those after its answer.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import AsyncIterator

from channels.db import database_sync_to_async
from channels.layers import BaseChannelLayer, get_channel_layer
from django.conf import settings

from agents_app import errors, selectors
from agents_app.agents import AGENTS
from agents_app.agents.base import AgentError, AgentItem, Delta, InputRequest, Phase
from agents_app.models import Run, RunStatus
from agents_app.services import draining, wakeups
from sessions_app.services import presence
from sessions_app.services.events import events_sent

logger = logging.getLogger(__name__)

_agent_context = database_sync_to_async(selectors.agent_context)
_run_claim = database_sync_to_async(draining.run_claim)
_run_progress = database_sync_to_async(draining.run_progress)
_run_finish = database_sync_to_async(draining.run_finish)
_current_worker_id = database_sync_to_async(presence.current_lease_id)

Ending = tuple[str, dict | None]


class RunDrain:
    """Drains one claimed run's agent into its session's log."""

    def __init__(self, *, run_id: uuid.UUID, agent: str, worker_id: str) -> None:
        self.run_id = run_id
        self.agent = agent
        self.worker_id = worker_id
        self.task: asyncio.Task | None = None
        self.buffer: list[AgentItem] = []
        # Set whenever the control loop has something to look at; `taken` when it took a write's items.
        self.changed = asyncio.Event()
        self.taken = asyncio.Event()
        self.answers: asyncio.Queue[dict] = asyncio.Queue()
        # How the agent itself ended (set by the pump): (status, error).
        self.outcome: Ending | None = None
        self.row_changed = False
        self.interrupting = False
        self.polled_at = 0.0
        self.renewed_at = time.monotonic()

    def poke(self) -> None:
        """The run's row changed (stop, answer): read it now rather than at the next poll."""
        self.row_changed = True
        self.changed.set()

    def interrupt(self) -> None:
        """End the run `interrupted` with its partial (the worker is shutting down)."""
        self.interrupting = True
        self.changed.set()

    async def receive_input(self) -> dict:
        return await self.answers.get()

    async def run(self) -> None:
        try:
            context = await _agent_context(run_id=self.run_id, receive_input=self.receive_input)
            generator = AGENTS[self.agent](context)
            pump = asyncio.create_task(self._pump(generator), name=f"linnet-pump-{self.run_id}")
            try:
                ending = await self._control()
            finally:
                pump.cancel()
                await asyncio.gather(pump, return_exceptions=True)
                await _close(generator)
            if ending is not None:
                status, error = ending
                await _run_finish(
                    run_id=self.run_id, worker_id=self.worker_id, status=status, text=self._buffered_text(), error=error
                )
        except Exception:
            logger.exception("run %s: the drain failed", self.run_id)
            await self._finish_failed()

    async def _pump(self, generator: AsyncIterator[AgentItem]) -> None:
        try:
            async for item in generator:
                if not isinstance(item, Delta | Phase | InputRequest):
                    raise TypeError(f"the {self.agent} agent yielded {item!r}")
                if isinstance(item, Delta) and not item.text:
                    continue
                self.buffer.append(item)
                self.changed.set()
                while len(self.buffer) >= settings.AGENT_DELTA_FLUSH_MAX:
                    # An agent faster than the writer waits rather than buffer without bound.
                    self.taken.clear()
                    await self.taken.wait()
            self.outcome = (RunStatus.DONE, None)
        except AgentError as exc:
            self.outcome = (RunStatus.ERROR, exc.as_json())
        except Exception as exc:
            logger.exception("run %s: the %s agent failed", self.run_id, self.agent)
            self.outcome = (RunStatus.ERROR, errors.error_json(errors.AGENT_FAILED, f"The agent failed: {exc}"))
        self.changed.set()

    def _take(self) -> list[AgentItem]:
        """The next write's items: everything buffered, up to AGENT_DELTA_FLUSH_MAX."""
        limit = settings.AGENT_DELTA_FLUSH_MAX
        items, self.buffer = self.buffer[:limit], self.buffer[limit:]
        self.taken.set()
        return items

    def _buffered_text(self) -> str:
        return "".join(item.text for item in self.buffer if isinstance(item, Delta))

    async def _control(self) -> Ending | None:
        """The drain's writer; returns how the run ends, or None when it is no longer this drain's."""
        poll_s = settings.AGENT_RUN_POLL_S
        renew_s = settings.AGENT_RUN_LEASE_TTL_S / 4
        while True:
            # Whatever arrived during the last write is written now; only an empty buffer waits.
            wait = self.polled_at + poll_s - time.monotonic()
            if not self.buffer and wait > 0:
                try:
                    await asyncio.wait_for(self.changed.wait(), timeout=wait)
                except TimeoutError:
                    pass
            self.changed.clear()
            if self.interrupting:
                return RunStatus.INTERRUPTED, errors.error_json(errors.WORKER_SHUTDOWN)
            now = time.monotonic()
            items = self._take()
            renew = now - self.renewed_at >= renew_s
            polling = self.row_changed or now - self.polled_at >= poll_s or self.outcome is not None
            if not (items or renew or polling):
                continue
            self.row_changed = False
            try:
                control = await _run_progress(run_id=self.run_id, worker_id=self.worker_id, items=items, renew=renew)
            except Exception:
                # Nothing was committed; keep the items and retry. If this lasts, the lease
                # lapses and the run is ended `interrupted` elsewhere.
                logger.exception("run %s: writing progress failed; retrying", self.run_id)
                self.buffer[:0] = items
                await asyncio.sleep(poll_s)
                continue
            if items:
                # The next write waits for this one's events to reach the layer: that is
                # what batches a busy stream, and keeps the run's publishes in order.
                await events_sent()
            self.polled_at = time.monotonic()
            if renew:
                self.renewed_at = now
            if control.lost:
                # Its session ended (which ends its runs) or its lease lapsed (logged where it is ended).
                logger.info("run %s was ended elsewhere; letting it go", self.run_id)
                return None
            if control.stop:
                return RunStatus.STOPPED, None
            if control.answer is not None:
                self.answers.put_nowait(control.answer)
            if self.outcome is not None and not self.buffer:
                return self.outcome

    async def _finish_failed(self) -> None:
        try:
            await _run_finish(
                run_id=self.run_id,
                worker_id=self.worker_id,
                status=RunStatus.ERROR,
                text=self._buffered_text(),
                error=errors.error_json(errors.AGENT_FAILED, "The run failed inside the server."),
            )
        except Exception:
            logger.exception("run %s: could not record the failure; its lease will lapse", self.run_id)


async def _close(generator: AsyncIterator[AgentItem]) -> None:
    """Let a stopped agent run its cleanup (an open HTTP stream, say)."""
    try:
        await generator.aclose()
    except Exception:
        logger.exception("closing an agent raised")


class DrainPool:
    """This process's drains: claims queued runs up to AGENT_DRAIN_CONCURRENCY and drains each."""

    def __init__(self, *, worker_id: str | None = None) -> None:
        # None: this process's presence lease holds the runs.
        self.worker_id = worker_id
        self.drains: dict[str, RunDrain] = {}
        self.closing = False
        self.claiming = asyncio.Lock()
        self.claim_task: asyncio.Task | None = None
        self.claim_again = False
        self.channel: str | None = None
        self.listener: asyncio.Task | None = None

    async def claim_once(self) -> int:
        """One claim pass: start a drain per claimed run until the pool is full; returns how many."""
        if self.closing:
            return 0
        async with self.claiming:
            await self._listen()
            worker_id = self.worker_id or await _current_worker_id()
            claimed = 0
            while not self.closing and len(self.drains) < settings.AGENT_DRAIN_CONCURRENCY:
                run = await _run_claim(worker_id=worker_id)
                if run is None:
                    break
                self._start(run, worker_id)
                claimed += 1
            return claimed

    def request_claim(self) -> None:
        """Claim as soon as possible, coalescing requests that arrive while a claim runs."""
        if self.closing:
            return
        if self.claim_task is not None and not self.claim_task.done():
            self.claim_again = True
            return
        self.claim_task = asyncio.get_running_loop().create_task(self._claim_soon(), name="linnet-claim")

    async def _claim_soon(self) -> None:
        try:
            while True:
                self.claim_again = False
                await self.claim_once()
                if not self.claim_again:
                    return
        except Exception:
            logger.exception("claiming runs failed; the next pass retries")

    def _start(self, run: Run, worker_id: str) -> None:
        drain = RunDrain(run_id=run.id, agent=run.agent, worker_id=worker_id)
        self.drains[str(run.id)] = drain
        drain.task = asyncio.get_running_loop().create_task(self._drain(drain), name=f"linnet-run-{run.id}")

    async def _drain(self, drain: RunDrain) -> None:
        group = wakeups.run_group_name(drain.run_id)
        try:
            await self._layer("group_add", group)
            await drain.run()
        finally:
            self.drains.pop(str(drain.run_id), None)
            await self._layer("group_discard", group)
            # Its slot is free, and a run queued behind it in its session may start now.
            self.request_claim()

    async def _layer(self, method: str, group: str) -> None:
        if self.channel is None:
            return
        try:
            await getattr(get_channel_layer(), method)(group, self.channel)
        except Exception:
            logger.exception("channel layer %s %s failed; polling covers it", method, group)

    async def _listen(self) -> None:
        """Join the claim group once, so a queued run or a stop reaches this pool at once."""
        if self.listener is not None and not self.listener.done():
            return
        layer = get_channel_layer()
        if layer is None:
            return
        try:
            self.channel = await layer.new_channel()
            await layer.group_add(wakeups.CLAIM_GROUP, self.channel)
        except Exception:
            logger.exception("joining the claim group failed; claiming by polling only")
            self.channel = None
            return
        self.listener = asyncio.get_running_loop().create_task(self._receive(layer), name="linnet-claim-listener")

    async def _receive(self, layer: BaseChannelLayer) -> None:
        while True:
            try:
                message = await layer.receive(self.channel)
            except Exception:
                logger.exception("receiving on the claim channel failed; retrying")
                await asyncio.sleep(settings.AGENT_CLAIM_INTERVAL_S)
                continue
            kind = message.get("type")
            if kind == wakeups.LAYER_RUNS_CLAIMABLE:
                self.request_claim()
            elif kind == wakeups.LAYER_RUN_CHANGED:
                drain = self.drains.get(str(message.get("run_id")))
                if drain is not None:
                    drain.poke()

    def stop_claiming(self) -> None:
        """Claim nothing more: the worker is stopping and would only interrupt what it claimed.

        Called the moment the worker is asked to stop, while its other loops may still take
        a while to finish their pass; the claim listener keeps poking running drains.
        """
        self.closing = True

    async def shutdown(self) -> None:
        """Stop claiming and end every drain `interrupted` with its partial, within AGENT_SHUTDOWN_GRACE_S.

        A drain that does not finish in time is cancelled and its run ended here with what
        it had stored, so nothing waits for the lease to lapse.
        """
        self.closing = True
        async with self.claiming:
            # A claim that was under way has finished: nothing starts after this point.
            pass
        for task in (self.claim_task, self.listener):
            if task is not None:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
        await self._layer("group_discard", wakeups.CLAIM_GROUP)
        drains = list(self.drains.values())
        if not drains:
            return
        for drain in drains:
            drain.interrupt()
        _, late = await asyncio.wait([d.task for d in drains], timeout=settings.AGENT_SHUTDOWN_GRACE_S)
        for task in late:
            task.cancel()
        await asyncio.gather(*late, return_exceptions=True)
        for drain in drains:
            if drain.task in late:
                try:
                    await _run_finish(
                        run_id=drain.run_id,
                        worker_id=drain.worker_id,
                        status=RunStatus.INTERRUPTED,
                        error=errors.error_json(errors.WORKER_SHUTDOWN),
                    )
                except Exception:
                    logger.exception("run %s: could not end it on shutdown; its lease will lapse", drain.run_id)
        logger.info("drains stopped: %d run(s) interrupted", len(drains))
