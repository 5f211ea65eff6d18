// The live voice client at `/`: start a session, stream the microphone, show what comes back.
//
// Phones and flaky networks: while the tab is hidden the page lets go of its sockets and the
// microphone but keeps the session; when it is visible again it asks whether the session is
// still alive, then resumes events after the last seq it showed, then audio, then the wake
// lock — or says calmly that the session timed out. Dropped sockets reconnect with backoff.

import { ApiError, SessionApi, TERMINAL_STATES, createSession, rememberToken } from "./api.js";
import { AudioSender, Microphone, WakeLock, audioUrl } from "./audio.js";
import { Backoff } from "./backoff.js";
import { EventStream } from "./events.js";
import { $, announce, config, hideNotice, setStatus, showNotice, wireNotes } from "./page.js";
import { SessionView } from "./view.js";

const ENDINGS = {
  session_idle: "Session timed out — it was closed after a while with nobody connected.",
  session_abandoned: "Session timed out — it waited too long for an answer.",
  session_aborted_by_staff: "This session was closed by the team running Linnet.",
};

class LiveClient {
  constructor() {
    this.session = null;
    this.view = null;
    this.events = null;
    this.audio = null;
    this.microphone = null;
    this.wakeLock = new WakeLock();
    this.active = false;
    this.hidden = false;
    this.resumeBackoff = new Backoff({ baseMs: 1_000, maxMs: 20_000 });
    this.form = $("#start-form");
    this.form.addEventListener("submit", (event) => {
      event.preventDefault();
      this.start();
    });
    $("#stop").addEventListener("click", () => this.stop());
    document.addEventListener("visibilitychange", () => (document.hidden ? this.pause() : this.resume()));
    window.addEventListener("pagehide", () => this.release());
  }

  options() {
    const options = {
      elcor: $("#opt-elcor").checked,
      window_ms: Number($("#opt-window").value),
    };
    if ($("#opt-share").checked) options.share_feedback = true;
    return options;
  }

  async start() {
    hideNotice();
    this.setControls(true);
    setStatus("connecting");
    let created;
    try {
      created = await createSession(this.options());
    } catch (error) {
      this.setControls(false);
      setStatus("problem");
      showNotice(`The session could not start: ${error.message}`, { tone: "warning" });
      return;
    }
    rememberToken(created.id, created.token);
    this.session = { id: created.id, token: created.token };
    this.api = new SessionApi(created.id, created.token);
    const root = $("#session-view");
    root.hidden = false;
    root.querySelectorAll("#tones, #runs, #badges, #transcript").forEach((list) => list.replaceChildren());
    $("#now").replaceChildren(Object.assign(document.createElement("p"), { className: "empty", textContent: "Listening for speech…" }));
    this.view = new SessionView({ root, toneLabels: config.toneLabels, api: this.api, announce, live: true });
    wireNotes(this.view, this.api);
    const link = $("#session-link");
    link.href = `/sessions/${created.id}/#token=${encodeURIComponent(created.token)}`;
    link.hidden = false;
    this.active = true;
    this.lastSeq = 0;
    await this.connect();
  }

  async connect() {
    if (!this.active || this.hidden) return;
    setStatus("connecting");
    await this.openEvents();
    if (!this.active || this.hidden) return;
    this.openAudio();
    await this.openMicrophone();
    if (!this.active || this.hidden) return;
    await this.wakeLock.acquire();
  }

  openEvents() {
    return new Promise((resolve) => {
      this.events = new EventStream({
        sessionId: this.session.id,
        token: this.session.token,
        onEvent: (event) => this.onEvent(event),
        onStatus: (state) => {
          if (state === "live") {
            resolve();
            this.showListening();
          } else if (state === "reconnecting") {
            setStatus("reconnecting");
          }
        },
        onEnd: ({ reason }) => {
          resolve();
          if (reason !== "ended") this.finish("problem", "The session's events are no longer available.");
        },
      });
      this.events.lastSeq = this.lastSeq;
      this.events.start();
    });
  }

  openAudio() {
    this.audio = new AudioSender({
      url: audioUrl(this.session.id, this.session.token),
      onStatus: (state) => (state === "reconnecting" ? setStatus("reconnecting") : this.showListening()),
      onEnd: ({ code, error }) => {
        // 1000 follows the session's end, which the event stream reports; others are refusals.
        if (code !== 1000 && this.active) {
          showNotice(`Audio stopped: ${error?.message ?? `closed with ${code}`}`, { tone: "warning" });
        }
      },
    });
    this.audio.start();
  }

  async openMicrophone() {
    this.microphone = new Microphone({
      sampleRate: config.sampleRate,
      onFrame: (pcm) => this.audio?.send(pcm),
      onLevel: (level) => {
        $("#level").style.width = `${Math.min(100, Math.round(Math.sqrt(level) * 160))}%`;
      },
    });
    try {
      await this.microphone.start();
    } catch {
      this.audio?.stop();
      this.audio = null;
      this.microphone = null;
      showNotice("The microphone is not available, so Linnet is only watching this session. Allow the microphone and start again to stream audio.", { tone: "warning" });
      setStatus("watching", "Watching (no microphone)");
    }
  }

  showListening() {
    if (!this.active || this.hidden) return;
    const eventsLive = this.events?.socket?.readyState === WebSocket.OPEN;
    if (eventsLive && this.microphone) setStatus("listening");
    else if (eventsLive) setStatus("watching");
  }

  onEvent(event) {
    this.lastSeq = event.seq;
    this.view.apply(event);
    if (event.type === "session.ended") {
      const code = event.data.error?.code;
      this.finish(code === "session_idle" || code === "session_abandoned" ? "timedout" : "ended", ENDINGS[code] ?? null);
    }
  }

  // Let go of sockets, microphone and wake lock; the session itself stays.
  async release() {
    this.events?.stop();
    this.events = null;
    this.audio?.stop();
    this.audio = null;
    const microphone = this.microphone;
    this.microphone = null;
    $("#level").style.width = "0";
    await Promise.all([microphone?.stop(), this.wakeLock.release()]);
  }

  async pause() {
    this.hidden = true;
    if (!this.active) return;
    await this.release();
    setStatus("paused");
  }

  async resume() {
    this.hidden = false;
    if (!this.active) return;
    setStatus("connecting", "Checking the session…");
    let session;
    try {
      session = await this.api.read();
    } catch (error) {
      if (error instanceof ApiError && error.status === 404) {
        this.finish("timedout", ENDINGS.session_idle);
      } else {
        // Offline or the server restarting: ask again, a little later each time.
        setStatus("reconnecting");
        clearTimeout(this.resumeTimer);
        this.resumeTimer = setTimeout(() => !this.hidden && this.resume(), this.resumeBackoff.next());
      }
      return;
    }
    this.resumeBackoff.reset();
    if (TERMINAL_STATES.has(session.state)) {
      const code = session.error?.code;
      this.finish(code === "session_idle" || code === "session_abandoned" ? "timedout" : "ended", ENDINGS[code] ?? null);
      return;
    }
    await this.connect();
  }

  async stop() {
    const api = this.api;
    this.active = false;
    await this.release();
    try {
      await api?.end();
    } catch {
      // Ended already, or the server is gone; either way there is nothing left to stop.
    }
    this.finish("ended");
  }

  finish(state, message = null) {
    const wasActive = this.active;
    this.active = false;
    this.release();
    this.setControls(false);
    setStatus(state);
    if (state === "timedout") {
      showNotice(message ?? ENDINGS.session_idle, { tone: "calm", action: { label: "Start a new session", run: () => this.start() } });
    } else if (message) {
      showNotice(message, { tone: state === "problem" ? "warning" : "calm" });
    } else if (wasActive || state === "ended") {
      showNotice("Session ended. Everything it produced is kept: open it later from the link below.", { tone: "calm" });
    }
  }

  setControls(running) {
    $("#start").hidden = running;
    $("#stop").hidden = !running;
    $("#options").disabled = running;
    (running ? $("#stop") : $("#start")).focus();
  }
}

new LiveClient();
