// What both pages share: the server's config, the status pill, the polite announcer,
// notices, and the notes controls of a session view.

export const config = JSON.parse(document.getElementById("linnet-config").textContent);
export const $ = (selector) => document.querySelector(selector);

const STATUS_TEXT = {
  idle: "Ready",
  connecting: "Connecting…",
  listening: "Listening",
  watching: "Live",
  reconnecting: "Reconnecting…",
  paused: "Paused while hidden",
  ended: "Ended",
  timedout: "Timed out",
  finished: "Finished",
  problem: "Needs attention",
};

export function setStatus(state, text = null) {
  const status = $("#status");
  status.dataset.state = state;
  status.querySelector(".status-text").textContent = text ?? STATUS_TEXT[state] ?? state;
}

export function announce(text) {
  const announcer = $("#announcer");
  announcer.textContent = "";
  // A fresh text node after clearing makes screen readers read a repeated message again.
  requestAnimationFrame(() => { announcer.textContent = text; });
}

export function showNotice(text, { tone = "calm", action = null } = {}) {
  const notice = $("#notice");
  notice.dataset.tone = tone;
  notice.replaceChildren(text);
  if (action) {
    const button = document.createElement("button");
    button.type = "button";
    button.textContent = action.label;
    button.addEventListener("click", action.run);
    notice.append(" ", button);
  }
  notice.hidden = false;
}

export function hideNotice() {
  $("#notice").hidden = true;
}

// Notes: start a run, stop the one in flight. The buttons follow the run events, so a
// run started from another tab shows here too.
export function wireNotes(view, api) {
  const start = $("#notes-start");
  const stop = $("#notes-stop");
  let requested = null;
  view.onRunsChanged = () => {
    const running = view.runInFlight();
    if (running) requested = null;
    stop.hidden = !(running || requested);
  };
  start.onclick = async () => {
    start.disabled = true;
    try {
      const run = await api.startRun("Notes on the session so far", "notes");
      requested = run.id;
      stop.hidden = false;
    } catch (error) {
      showNotice(`Notes could not start: ${error.message}`, { tone: "warning" });
    } finally {
      start.disabled = false;
    }
  };
  stop.onclick = async () => {
    const runId = view.runInFlight() ?? requested;
    if (!runId) return;
    stop.disabled = true;
    try {
      await api.stopRun(runId);
      requested = null;
    } finally {
      stop.disabled = false;
      start.focus();
    }
  };
  $("#export").onclick = () => api.downloadExport().catch((error) => showNotice(error.message, { tone: "warning" }));
}
