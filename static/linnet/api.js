// The session API from the browser: the token as a Bearer header (never in a page URL),
// or the visitor's login with Django's CSRF token for cookie-authenticated writes.

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

function csrfToken() {
  const match = document.cookie.match(/(?:^|;\s*)csrftoken=([^;]+)/);
  return match ? decodeURIComponent(match[1]) : null;
}

export async function apiRequest(method, path, { token = null, body = undefined } = {}) {
  const headers = { Accept: "application/json" };
  if (token) headers.Authorization = `Bearer ${token}`;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (method !== "GET" && !token) {
    const csrf = csrfToken();
    if (csrf) headers["X-CSRFToken"] = csrf;
  }
  let response;
  try {
    response = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials: "same-origin",
      cache: "no-store",
    });
  } catch (error) {
    throw new ApiError(0, "network", "The server could not be reached.");
  }
  if (response.status === 204) return null;
  const payload = await response.json().catch(() => null);
  if (!response.ok) {
    const error = payload?.error ?? {};
    throw new ApiError(response.status, error.code ?? "http_error", error.message ?? response.statusText);
  }
  return payload;
}

export class SessionApi {
  constructor(sessionId, token) {
    this.sessionId = sessionId;
    this.token = token;
    this.base = `/api/sessions/${sessionId}`;
  }

  call(method, suffix = "", body = undefined) {
    return apiRequest(method, this.base + suffix, { token: this.token, body });
  }

  read() { return this.call("GET"); }
  end() { return this.call("DELETE"); }
  sendInput(input) { return this.call("POST", "/input", { input }); }
  startRun(input, agent = "notes") { return this.call("POST", "/runs", { input, agent }); }
  stopRun(runId) { return this.call("POST", `/runs/${runId}/stop`); }
  messages() { return this.call("GET", "/messages"); }
  feedback(seq, verdict, label = null) {
    const body = { seq, verdict };
    if (label) body.label = label;
    return this.call("POST", "/feedback", body);
  }

  async downloadExport() {
    const headers = this.token ? { Authorization: `Bearer ${this.token}` } : {};
    const response = await fetch(`${this.base}/export`, { headers, credentials: "same-origin" });
    if (!response.ok) throw new ApiError(response.status, "export_failed", "The export could not be made.");
    const url = URL.createObjectURL(await response.blob());
    const link = Object.assign(document.createElement("a"), {
      href: url,
      download: `linnet-session-${this.sessionId}.json`,
    });
    document.body.append(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(url), 10_000);
  }
}

export function createSession(options) {
  return apiRequest("POST", "/api/sessions", { body: options });
}

// Where a session's token is kept: this tab's sessionStorage, so it survives a reload and a
// return from the session page but never appears in a URL the server logs.
const TOKEN_KEY = (id) => `linnet.token.${id}`;

export function rememberToken(sessionId, token) {
  try { sessionStorage.setItem(TOKEN_KEY(sessionId), token); } catch { /* storage disabled: the page still works */ }
}

export function recalledToken(sessionId) {
  try { return sessionStorage.getItem(TOKEN_KEY(sessionId)); } catch { return null; }
}

export function wsUrl(path, params) {
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  const query = new URLSearchParams(Object.entries(params).filter(([, value]) => value !== null && value !== undefined));
  const text = query.toString();
  return `${scheme}//${location.host}${path}${text ? `?${text}` : ""}`;
}

export const TERMINAL_STATES = new Set(["done", "failed", "aborted"]);
