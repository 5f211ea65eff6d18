// The session's event stream over the events WebSocket.
//
// Every event carries a strictly increasing `seq`; the stream remembers the last one it
// delivered and reconnects with `after=<that seq>`, so a resumed page shows nothing twice and
// misses nothing. It acknowledges what it has received with heartbeat `last_seq`, often enough
// that the server's bound on unacknowledged events never cuts a tab that is keeping up.

import { Backoff } from "./backoff.js";
import { wsUrl } from "./api.js";

const HEARTBEAT_MS = 10_000;
// Acknowledge at least this often while events pour in (the server allows thousands).
const ACK_EVERY_EVENTS = 200;

// Close codes after which reconnecting cannot help.
const FATAL_CLOSES = new Map([
  [4401, "unauthorized"],
  [4403, "forbidden"],
  [4404, "not_found"],
  [4409, "not_active"],
]);

export class EventStream {
  constructor({ sessionId, token, onEvent, onStatus = () => {}, onEnd = () => {} }) {
    this.sessionId = sessionId;
    this.token = token;
    this.onEvent = onEvent;
    this.onStatus = onStatus;
    this.onEnd = onEnd;
    this.lastSeq = 0;
    this.backoff = new Backoff();
    this.socket = null;
    this.wanted = false;
    this.retryTimer = null;
    this.heartbeatTimer = null;
    this.sinceAck = 0;
  }

  start() {
    this.wanted = true;
    this.connect();
  }

  stop() {
    this.wanted = false;
    clearTimeout(this.retryTimer);
    this.closeSocket();
  }

  connect() {
    clearTimeout(this.retryTimer);
    const path = `/ws/sessions/${this.sessionId}/events`;
    const socket = new WebSocket(wsUrl(path, { token: this.token, after: this.lastSeq || null }));
    this.socket = socket;
    this.onStatus(this.backoff.attempt ? "reconnecting" : "connecting");
    socket.addEventListener("message", (message) => this.receive(socket, message));
    socket.addEventListener("close", (event) => this.closed(socket, event));
  }

  receive(socket, message) {
    if (socket !== this.socket) return;
    let payload;
    try {
      payload = JSON.parse(message.data);
    } catch {
      return;
    }
    if (payload.type === "replay.complete") {
      this.backoff.reset();
      this.startHeartbeat();
      this.onStatus("live", payload);
      return;
    }
    if (payload.type === "error") {
      this.lastError = payload;
      return;
    }
    if (typeof payload.seq !== "number" || payload.seq <= this.lastSeq) return;
    this.lastSeq = payload.seq;
    this.onEvent(payload);
    this.sinceAck += 1;
    if (this.sinceAck >= ACK_EVERY_EVENTS) this.acknowledge();
  }

  acknowledge() {
    this.sinceAck = 0;
    if (this.socket?.readyState === WebSocket.OPEN) {
      this.socket.send(JSON.stringify({ type: "heartbeat", last_seq: this.lastSeq }));
    }
  }

  sendInput(input) {
    if (this.socket?.readyState !== WebSocket.OPEN) return false;
    this.socket.send(JSON.stringify({ type: "input", input }));
    return true;
  }

  startHeartbeat() {
    clearInterval(this.heartbeatTimer);
    this.acknowledge();
    this.heartbeatTimer = setInterval(() => this.acknowledge(), HEARTBEAT_MS);
  }

  closeSocket() {
    clearInterval(this.heartbeatTimer);
    const socket = this.socket;
    this.socket = null;
    if (socket && socket.readyState <= WebSocket.OPEN) socket.close(1000);
  }

  closed(socket, event) {
    if (socket !== this.socket) return;
    clearInterval(this.heartbeatTimer);
    this.socket = null;
    if (!this.wanted) return;
    if (event.code === 1000) {
      // The server closes with 1000 after session.ended (or after replaying an ended session).
      this.wanted = false;
      this.onEnd({ reason: "ended" });
      return;
    }
    if (FATAL_CLOSES.has(event.code)) {
      this.wanted = false;
      this.onEnd({ reason: FATAL_CLOSES.get(event.code), error: this.lastError });
      return;
    }
    // A network drop, a server restart, or 4429 (too slow): resume from the last seq.
    this.onStatus("reconnecting");
    this.retryTimer = setTimeout(() => this.connect(), this.backoff.next());
  }
}
