// The staff live dashboard: snapshots from /ws/admin/live, rendered into the admin page.
//
// Only the status line is a live region, and its text changes only when the connection
// does, so a screen reader hears "Live" or "Disconnected" once, not every snapshot.

import { Backoff } from "./backoff.js";

const SESSION_STATES = ["pending", "running", "input_required", "done", "failed", "aborted"];
const ENDED_STATES = new Set(["done", "failed", "aborted"]);
const RUN_STATUSES = ["queued", "running", "input_required", "done", "stopped", "error", "interrupted"];
const WINDOW_S = 300;
// 4401 (not logged in) and 4403 (not staff, or a foreign origin) will not change by retrying.
const REFUSED = new Set([4401, 4403]);
const PROCESS_STATUS = {
  expired: { rank: 0, icon: "✕", label: "Lease expired" },
  lagging: { rank: 1, icon: "⚠", label: "Lagging" },
  alive: { rank: 2, icon: "✓", label: "Alive" },
  stopped: { rank: 3, icon: "■", label: "Stopped" },
};

const root = document.querySelector(".linnet-live");
const number = new Intl.NumberFormat();
const rate = new Intl.NumberFormat(undefined, { maximumFractionDigits: 1 });

function byId(id) {
  return document.getElementById(id);
}

function element(tag, { className, text, title } = {}, children = []) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  if (title) node.title = title;
  node.append(...children);
  return node;
}

function formatAge(seconds) {
  const s = Math.max(0, seconds);
  if (s < 90) return `${Math.round(s)} s`;
  if (s < 90 * 60) return `${Math.round(s / 60)} min`;
  if (s < 48 * 3600) return `${rate.format(s / 3600)} h`;
  return `${Math.round(s / 86400)} d`;
}

function secondsBetween(laterIso, earlierIso) {
  return (Date.parse(laterIso) - Date.parse(earlierIso)) / 1000;
}

// Status line --------------------------------------------------------------------------

function setStatus(state, text) {
  // The grid dims through this attribute while the numbers are not live.
  root.dataset.state = state;
  const statusText = byId("live-status");
  if (statusText.textContent !== text) statusText.textContent = text;
}

function showRefused(code, error) {
  const message =
    error?.message || (code === 4401 ? "Log in as a staff user to watch the live console." : "Not allowed.");
  setStatus("refused", `Not connected: ${message}`);
  if (code === 4401 && !root.querySelector(".live-login")) {
    const link = element("a", { text: "Log in again" });
    link.href = root.dataset.loginUrl;
    root.querySelector(".live-statusbar").after(element("p", { className: "live-login errornote" }, [link]));
  }
}

// Rendering ----------------------------------------------------------------------------

function countRows(tbody, counts, order) {
  const keys = [...order, ...Object.keys(counts).filter((key) => !order.includes(key)).sort()];
  tbody.replaceChildren(
    ...keys.map((key) => {
      const n = counts[key] ?? 0;
      const row = element("tr", { className: n ? "" : "is-zero" }, [
        element("th", { text: key.replaceAll("_", " ") }),
        element("td", { className: "num", text: number.format(n) }),
      ]);
      row.firstChild.scope = "row";
      return row;
    }),
  );
}

function renderSparkline(samples, atIso) {
  const svg = byId("live-events-sparkline");
  const width = 300;
  const height = 64;
  const end = Date.parse(atIso);
  const points = samples.map((s) => [Date.parse(s.at), s.per_s]).filter(([t]) => t >= end - WINDOW_S * 1000);
  // A young history fills the chart (from one minute up) instead of a sliver at its right edge.
  const spanMs = Math.min(WINDOW_S * 1000, Math.max(60_000, end - (points[0]?.[0] ?? end)));
  const start = end - spanMs;
  const summary = byId("live-events-summary");
  if (!points.length) {
    byId("live-events-now").textContent = "—";
    svg.querySelector(".spark-line").setAttribute("points", "");
    svg.querySelector(".spark-area").setAttribute("d", "");
    svg.setAttribute("aria-label", "Events per second over the last 5 minutes: no samples yet");
    summary.textContent = "Measuring: a rate needs two snapshots.";
    return;
  }
  const values = points.map(([, v]) => v);
  const peak = Math.max(...values);
  const mean = values.reduce((a, b) => a + b, 0) / values.length;
  const top = Math.max(1, peak);
  const xy = points.map(([t, v]) => [
    (((t - start) / spanMs) * width).toFixed(1),
    (height - 2 - (v / top) * (height - 4)).toFixed(1),
  ]);
  svg.querySelector(".spark-line").setAttribute("points", xy.map((p) => p.join(",")).join(" "));
  svg
    .querySelector(".spark-area")
    .setAttribute("d", `M${xy[0][0]},${height} L${xy.map((p) => p.join(",")).join(" L")} L${xy.at(-1)[0]},${height} Z`);
  const now = values.at(-1);
  byId("live-events-now").textContent = rate.format(now);
  // A rate covers the interval before its reading, so the history reaches one interval further back.
  const span = formatAge((end - points[0][0]) / 1000 + Number(root.dataset.intervalS || 0));
  const text = `Peak ${rate.format(peak)}, mean ${rate.format(mean)} events/s over the last ${span}.`;
  summary.textContent = text;
  svg.setAttribute("aria-label", `Events per second: now ${rate.format(now)}. ${text}`);
}

function leaseText(process, atIso) {
  if (process.status === "stopped") return `stopped ${formatAge(secondsBetween(atIso, process.stopped_at))} ago`;
  if (process.lease_left_s < 0) return `expired ${formatAge(-process.lease_left_s)} ago`;
  return `expires in ${formatAge(process.lease_left_s)}`;
}

function loopList(loops) {
  const names = Object.keys(loops);
  if (!names.length) return element("span", { className: "live-quiet", text: "no loops" });
  return element(
    "ul",
    { className: "live-loops" },
    names.map((name) => {
      const loop = loops[name];
      const detail = `last pass handled ${loop.count ?? "?"} in ${loop.ms ?? "?"} ms; runs every ${rate.format(loop.every_s)} s`;
      const children = [];
      if (loop.stalled) children.push(element("strong", { className: "live-flag", text: "⚠ stalled " }));
      children.push(
        element("span", { className: "live-loop-name", text: name }),
        ` ${formatAge(loop.age_s)} ago`,
        element("span", { className: "live-quiet", text: ` / every ${formatAge(loop.every_s)}` }),
      );
      return element("li", { className: loop.stalled ? "is-stalled" : "", title: detail }, children);
    }),
  );
}

function renderProcesses(processes, atIso) {
  const sorted = [...processes].sort(
    (a, b) => (PROCESS_STATUS[a.status]?.rank ?? 0) - (PROCESS_STATUS[b.status]?.rank ?? 0),
  );
  const rows = sorted.map((process) => {
    const status = PROCESS_STATUS[process.status] ?? { icon: "?", label: process.status };
    const statusCell = element("td", { className: "live-process-status" }, [
      element("span", { className: "live-icon", text: status.icon }),
      ` ${status.label}`,
    ]);
    statusCell.firstChild.setAttribute("aria-hidden", "true");
    const row = element("tr", { className: `status-${process.status}${process.stalled ? " is-stalled" : ""}` }, [
      statusCell,
      element("td", { text: process.role }),
      element("td", { text: process.hostname, title: process.id }),
      element("td", { className: "num", text: String(process.pid) }),
      element("td", { text: leaseText(process, atIso) }),
      element("td", {}, [loopList(process.loops)]),
    ]);
    return row;
  });
  const body = byId("live-processes").tBodies[0];
  if (!rows.length) {
    const empty = element("td", { className: "live-quiet", text: "No process has registered yet." });
    empty.colSpan = 6;
    rows.push(element("tr", {}, [empty]));
  }
  body.replaceChildren(...rows);

  const counts = {};
  for (const process of processes) counts[process.status] = (counts[process.status] ?? 0) + 1;
  const parts = ["expired", "lagging", "alive", "stopped"]
    .filter((status) => counts[status])
    .map((status) => `${counts[status]} ${PROCESS_STATUS[status].label.toLowerCase()}`);
  const summary = byId("live-processes-summary");
  const stalled = (counts.lagging ?? 0) + (counts.expired ?? 0);
  summary.textContent = `${stalled ? "⚠ " : ""}${parts.join(", ") || "No processes"}.`;
  summary.classList.toggle("is-stalled", stalled > 0);
}

function render(snapshot) {
  const byState = snapshot.sessions_by_state;
  const live = Object.entries(byState)
    .filter(([state]) => !ENDED_STATES.has(state))
    .reduce((sum, [, n]) => sum + n, 0);
  byId("live-sessions-live").textContent = number.format(live);
  countRows(byId("live-sessions-by-state"), byState, SESSION_STATES);
  renderSparkline(snapshot.events_per_second, snapshot.at);
  byId("live-audio-streams").textContent = number.format(snapshot.audio_streams);
  byId("live-subscribers").textContent = number.format(snapshot.subscribers);
  byId("live-runs-in-flight").textContent = number.format(snapshot.runs_in_flight);
  countRows(byId("live-runs-by-status"), snapshot.runs_by_status, RUN_STATUSES);
  renderProcesses(snapshot.processes, snapshot.at);
  byId("live-updated").textContent = `Updated ${new Date(snapshot.at).toLocaleTimeString()}`;
}

// Connection ---------------------------------------------------------------------------

function socketUrl(path) {
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  return `${scheme}//${location.host}${path}`;
}

function connectLive() {
  const backoff = new Backoff({ baseMs: 1000, maxMs: 30_000 });
  // No snapshot for several intervals means a half-open connection: drop it and reconnect.
  const staleMs = Math.max(8000, 4 * 1000 * Number(root.dataset.intervalS || 2));
  let watchdog = null;

  function open() {
    const socket = new WebSocket(socketUrl(root.dataset.socketPath));
    let lastError = null;
    const arm = () => {
      clearTimeout(watchdog);
      watchdog = setTimeout(() => socket.close(), staleMs);
    };
    socket.addEventListener("open", arm);
    socket.addEventListener("message", (event) => {
      let message;
      try {
        message = JSON.parse(event.data);
      } catch {
        return;
      }
      if (message.type === "snapshot") {
        arm();
        backoff.reset();
        setStatus("live", "Live");
        render(message);
      } else if (message.type === "error") {
        lastError = message;
      }
    });
    socket.addEventListener("close", (event) => {
      clearTimeout(watchdog);
      if (REFUSED.has(event.code)) {
        showRefused(event.code, lastError);
        return;
      }
      const delay = backoff.next();
      setStatus("disconnected", "Disconnected: reconnecting…");
      setTimeout(open, delay);
    });
  }

  open();
}

if (root) connectLive();
