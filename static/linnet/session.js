// A session reopened from its log at /sessions/{id}/: the whole log is replayed into the
// same view the live client uses; a session still running (or a run still in flight)
// carries on live. Access: the token from the link's fragment or this tab's storage, or
// the visitor's login as the session's owner or staff.

import { ApiError, SessionApi, TERMINAL_STATES, recalledToken, rememberToken } from "./api.js";
import { EventStream } from "./events.js";
import { $, announce, config, setStatus, showNotice, wireNotes } from "./page.js";
import { SessionView } from "./view.js";

function takeToken(sessionId) {
  const fragment = new URLSearchParams(location.hash.slice(1));
  const token = fragment.get("token");
  if (token) {
    rememberToken(sessionId, token);
    // Keep the token out of the address bar (and screenshots, and shared screens).
    history.replaceState(null, "", location.pathname + location.search);
    return token;
  }
  return recalledToken(sessionId);
}

function describe(session) {
  const created = new Date(session.created_at).toLocaleString();
  const parts = [`${session.kind} session`, `opened ${created}`, `state ${session.state}`];
  if (session.options?.elcor) parts.push("elcor subtext");
  if (session.error?.code) parts.push(`ended: ${session.error.code.replaceAll("_", " ")}`);
  return parts.join(" · ");
}

const NEEDS_LINK = "This session opens with its link (which carries its token), or when you are logged in as its owner or as staff.";

function refuse(text) {
  setStatus("problem");
  $("#session-meta").textContent = "";
  showNotice(text, { tone: "warning" });
}

async function main() {
  const sessionId = $("#session-head").dataset.sessionId;
  const api = new SessionApi(sessionId, takeToken(sessionId));
  if (!api.token && !config.loginAccess) {
    refuse(NEEDS_LINK);
    return;
  }
  setStatus("connecting", "Loading…");
  let session;
  try {
    session = await api.read();
  } catch (error) {
    refuse(error instanceof ApiError && error.status === 401 ? NEEDS_LINK : `The session could not be loaded: ${error.message}`);
    return;
  }
  $("#session-meta").textContent = describe(session);
  const root = $("#session-view");
  root.hidden = false;
  const view = new SessionView({ root, toneLabels: config.toneLabels, api, announce });
  wireNotes(view, api);
  const ended = () => TERMINAL_STATES.has(session.state);
  $("#notes-start").hidden = ended();

  const stream = new EventStream({
    sessionId,
    token: api.token,
    onEvent: (event) => {
      view.apply(event);
      if (event.type === "session.state") session.state = event.data.state;
      if (event.type === "session.ended") {
        session.state = event.data.state;
        $("#notes-start").hidden = true;
        $("#session-meta").textContent = describe({ ...session, error: event.data.error });
      }
    },
    onStatus: (state) => {
      if (state === "live") {
        setStatus(ended() ? "finished" : "watching");
        view.loadMessages().catch(() => {});
      } else {
        setStatus(state);
      }
    },
    onEnd: ({ reason }) => {
      if (reason === "ended") setStatus("finished");
      else {
        setStatus("problem");
        showNotice("The session's events are no longer available.", { tone: "warning" });
      }
    },
  });
  stream.start();
  document.addEventListener("visibilitychange", () => {
    // A reopened session only watches: let go while hidden, pick up after the last seq.
    if (document.hidden) stream.stop();
    else if (!ended()) stream.start();
  });
}

main();
