// Microphone capture and the audio WebSocket.
//
// Capture: getUserMedia → AudioWorklet (audio-worklet.js) → 100 ms PCM16 frames.
// Sending: binary frames on /ws/sessions/{id}/audio; `close` when the page lets go of the
// session for a while (a hidden tab), so the server ends the stream cleanly and keeps the
// session. The server continues the session's audio timeline across reconnects.

import { Backoff } from "./backoff.js";
import { wsUrl } from "./api.js";

export const FRAME_MS = 100;

export class Microphone {
  constructor({ sampleRate, onFrame, onLevel = () => {} }) {
    this.sampleRate = sampleRate;
    this.onFrame = onFrame;
    this.onLevel = onLevel;
    this.context = null;
    this.stream = null;
  }

  async start() {
    this.stream = await navigator.mediaDevices.getUserMedia({
      audio: { channelCount: 1, echoCancellation: true, noiseSuppression: false, autoGainControl: false },
    });
    try {
      await this.connect(new AudioContext({ sampleRate: this.sampleRate }));
    } catch {
      // Some browsers refuse a microphone feeding a context of another rate: resample ourselves.
      await this.close();
      await this.connect(new AudioContext());
    }
  }

  async connect(context) {
    this.context = context;
    await context.audioWorklet.addModule(new URL("./audio-worklet.js", import.meta.url));
    const source = context.createMediaStreamSource(this.stream);
    const framer = new AudioWorkletNode(context, "linnet-pcm-framer", {
      numberOfInputs: 1,
      numberOfOutputs: 0,
      channelCount: 1,
      processorOptions: { targetRate: this.sampleRate, frameMs: FRAME_MS },
    });
    framer.port.onmessage = ({ data }) => {
      this.onLevel(data.level);
      this.onFrame(data.pcm);
    };
    source.connect(framer);
    if (context.state === "suspended") await context.resume();
  }

  async close() {
    const context = this.context;
    this.context = null;
    if (context && context.state !== "closed") await context.close().catch(() => {});
  }

  async stop() {
    await this.close();
    this.stream?.getTracks().forEach((track) => track.stop());
    this.stream = null;
  }
}

const FATAL_AUDIO_CLOSES = new Set([4400, 4401, 4403, 4404, 4409, 4413]);
// Frames kept while the socket reconnects; beyond this the oldest audio is dropped rather
// than sent late in a burst the server would refuse as faster than real time.
const MAX_QUEUED_FRAMES = 20;

export class AudioSender {
  constructor({ url, onStatus = () => {}, onAck = () => {}, onEnd = () => {} }) {
    this.url = url;
    this.onStatus = onStatus;
    this.onAck = onAck;
    this.onEnd = onEnd;
    this.backoff = new Backoff();
    this.queue = [];
    this.socket = null;
    this.wanted = false;
    this.retryTimer = null;
    this.framesSent = 0;
  }

  start() {
    this.wanted = true;
    this.connect();
  }

  connect() {
    const socket = new WebSocket(this.url);
    socket.binaryType = "arraybuffer";
    this.socket = socket;
    socket.addEventListener("message", (message) => {
      let payload;
      try { payload = JSON.parse(message.data); } catch { return; }
      if (payload.type === "ready") {
        this.backoff.reset();
        this.onStatus("streaming");
        this.flushQueue();
      } else if (payload.type === "ack") {
        this.onAck(payload);
      } else if (payload.type === "error") {
        this.lastError = payload;
      }
    });
    socket.addEventListener("close", (event) => this.closed(socket, event));
  }

  send(pcm) {
    if (!this.wanted) return;
    if (this.socket?.readyState === WebSocket.OPEN && this.queue.length === 0) {
      this.socket.send(pcm);
      this.framesSent += 1;
      return;
    }
    this.queue.push(pcm);
    if (this.queue.length > MAX_QUEUED_FRAMES) this.queue.shift();
  }

  flushQueue() {
    while (this.queue.length && this.socket?.readyState === WebSocket.OPEN) {
      this.socket.send(this.queue.shift());
      this.framesSent += 1;
    }
  }

  stop() {
    this.wanted = false;
    clearTimeout(this.retryTimer);
    this.queue = [];
    const socket = this.socket;
    this.socket = null;
    if (!socket) return;
    if (socket.readyState === WebSocket.OPEN) {
      socket.send(JSON.stringify({ type: "close" }));
      // The server answers `close` with its summary and closes; make sure the socket goes.
      setTimeout(() => socket.readyState <= WebSocket.OPEN && socket.close(1000), 2_000);
    } else if (socket.readyState === WebSocket.CONNECTING) {
      socket.close(1000);
    }
  }

  closed(socket, event) {
    if (socket !== this.socket) return;
    this.socket = null;
    if (!this.wanted) return;
    if (event.code === 1000 || FATAL_AUDIO_CLOSES.has(event.code)) {
      this.wanted = false;
      this.onEnd({ code: event.code, error: this.lastError });
      return;
    }
    this.onStatus("reconnecting");
    this.retryTimer = setTimeout(() => this.connect(), this.backoff.next());
  }
}

export function audioUrl(sessionId, token) {
  return wsUrl(`/ws/sessions/${sessionId}/audio`, { token });
}

// Screen Wake Lock: keeps a phone's screen on while the session listens; silently skipped
// where the browser has none or refuses it (battery saver, an unfocused page).
export class WakeLock {
  constructor() {
    this.sentinel = null;
  }

  async acquire() {
    if (!("wakeLock" in navigator) || this.sentinel) return;
    try {
      this.sentinel = await navigator.wakeLock.request("screen");
      this.sentinel.addEventListener("release", () => { this.sentinel = null; });
    } catch {
      this.sentinel = null;
    }
  }

  async release() {
    const sentinel = this.sentinel;
    this.sentinel = null;
    await sentinel?.release().catch(() => {});
  }
}
