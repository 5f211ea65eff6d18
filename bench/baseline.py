"""The baseline: a bare Channels socket that joins a group and forwards what it is sent, and its producer.

The consumer does nothing Linnet's events socket does on top of Channels (no auth, no
database, no presence, no replay cursor), and the producer sends each token to the group
the moment it is produced, with no log and no drain, so the difference between the two
sides is what Linnet adds. The consumer takes the same layer message as the events socket.
"""

from __future__ import annotations

import json
import time

from channels.generic.websocket import AsyncWebsocketConsumer
from channels.layers import get_channel_layer

from bench.tokens import TokenStream
from sessions_app.services.events import LAYER_EVENTS

# The run_id of the baseline's `run.delta` envelopes: there is no run.
BARE_RUN_ID = "bare"


class BareGroupConsumer(AsyncWebsocketConsumer):
    async def connect(self) -> None:
        self.group = self.scope["url_route"]["kwargs"]["group"]
        # Joined before the handshake completes, so a connected client is already subscribed.
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self.accept()

    # The handler of sessions_app.services.events.LAYER_EVENTS ("session.events").
    async def session_events(self, message: dict) -> None:
        for envelope in message["events"]:
            await self.send(text_data=json.dumps(envelope, separators=(",", ":")))

    async def disconnect(self, code: int) -> None:
        await self.channel_layer.group_discard(self.group, self.channel_name)


async def bare_stream(*, group: str, stream: TokenStream) -> None:
    """Send each token of `stream` to `group` by itself, as a `run.delta` envelope, as it is produced."""
    layer = get_channel_layer()
    async for index, text in stream.tokens():
        envelope = {"seq": index, "type": "run.delta", "ts": time.time(), "data": {"run_id": BARE_RUN_ID, "text": text}}
        await layer.group_send(group, {"type": LAYER_EVENTS, "events": [envelope]})
