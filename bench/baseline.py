"""The baseline consumer: a bare Channels socket that joins a group and forwards what it is sent.

It does nothing Linnet's events socket does on top of Channels (no auth, no database, no
presence, no replay cursor), so the difference between the two is what Linnet adds. It
takes the same layer message as the events socket, so one publisher drives either.
"""

from __future__ import annotations

import json

from channels.generic.websocket import AsyncWebsocketConsumer


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
