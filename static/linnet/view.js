// What a session looks like on a page, built from its event log: the current tone, the
// timeline, every reading with its feedback, sound badges, the transcript and agent runs.
// The live client and the reopened-session page both feed it events in seq order.

import { Timeline, fmt, toneStyle } from "./timeline.js";

const MAX_TONE_ROWS = 300;
const MAX_BADGES = 6;
const DIRECTION_TEXT = { escalating: "▲ escalating", "de-escalating": "▼ de-escalating", stable: "● stable" };

function element(tag, attributes = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attributes)) {
    if (key === "class") el.className = value;
    else if (key === "text") el.textContent = value;
    else if (key.startsWith("on")) el.addEventListener(key.slice(2), value);
    else if (value === true) el.setAttribute(key, "");
    else if (value !== false && value !== null && value !== undefined) el.setAttribute(key, value);
  }
  el.append(...children.filter((child) => child !== null && child !== undefined));
  return el;
}

function percent(value) {
  return `${Math.round((value ?? 0) * 100)}%`;
}

function shiftText(data) {
  const direction = data.shift_direction ?? "stable";
  const text = DIRECTION_TEXT[direction] ?? direction;
  return direction === "stable" ? text : `${text} (${(data.shift_magnitude ?? 0).toFixed(2)})`;
}

export class SessionView {
  constructor({ root, toneLabels, api, announce, live = false, onRunsChanged = () => {} }) {
    this.root = root;
    this.toneLabels = toneLabels;
    this.api = api;
    this.announce = announce;
    this.onRunsChanged = onRunsChanged;
    this.$ = (selector) => root.querySelector(selector);
    this.timeline = new Timeline(this.$("#timeline"), { windowSeconds: live ? 60 : null });
    this.toneRows = new Map();
    this.runs = new Map();
    this.interim = new Map();
    this.lastAnnounced = null;
  }

  apply(event) {
    const handler = {
      tone: this.tone,
      "tone.feedback": this.feedback,
      queue: this.sound,
      environ: this.sound,
      speaker: this.speaker,
      transcript: this.transcript,
      "run.started": this.runStarted,
      "run.delta": this.runDelta,
      "run.status": this.runStatus,
      "run.done": this.runDone,
      input_required: this.inputRequired,
      "session.state": this.sessionState,
    }[event.type];
    handler?.call(this, event.seq, event.data ?? {});
  }

  // Tones

  tone(seq, data) {
    this.timeline.addTone(seq, data);
    this.showNow(data);
    const list = this.$("#tones");
    list.prepend(this.toneRow(seq, data));
    while (list.children.length > MAX_TONE_ROWS) {
      const oldest = list.lastElementChild;
      this.toneRows.delete(Number(oldest.dataset.seq));
      oldest.remove();
    }
    const key = `${data.label}|${data.shift_direction}`;
    if (key !== this.lastAnnounced) {
      this.lastAnnounced = key;
      this.announce(`${data.label}, ${percent(data.confidence)} confident, ${data.shift_direction ?? "stable"}`);
    }
  }

  showNow(data) {
    const style = toneStyle(data.label);
    this.$("#now").replaceChildren(
      element(
        "div",
        { class: `now-tone tone-${data.label}` },
        element("span", { class: "glyph", "aria-hidden": "true", text: style.letter }),
        element("strong", { class: "now-label", text: data.label }),
        element("span", { class: "confidence", text: `${percent(data.confidence)} confident` }),
        element("span", { class: `shift shift-${data.shift_direction ?? "stable"}`, text: shiftText(data) }),
      ),
      element("p", { class: "subtext", text: data.subtext ?? "" }),
      element("meter", { min: 0, max: 1, value: data.confidence ?? 0, "aria-label": "confidence" }),
    );
  }

  toneRow(seq, data) {
    const style = toneStyle(data.label);
    const status = element("span", { class: "fb-status", role: "status" });
    const up = element("button", { type: "button", class: "fb-up", "aria-pressed": "false", text: "✓ Right" });
    const down = element("button", { type: "button", class: "fb-down", "aria-pressed": "false", text: "✗ Wrong" });
    const choice = element(
      "select",
      { class: "fb-label", "aria-label": `The right tone for reading at ${fmt(data.start)} s` },
      element("option", { value: "", text: "Not sure" }),
      ...this.toneLabels.filter((t) => t.name !== data.label).map((t) => element("option", { value: t.name, text: t.name })),
    );
    const save = element("button", { type: "submit", class: "fb-save", text: "Save" });
    const correction = element(
      "form",
      { class: "fb-correct", hidden: true },
      element("label", {}, "It sounded ", choice),
      save,
    );
    const row = element(
      "li",
      { class: `tone-row tone-${data.label}`, "data-seq": seq, "data-label": data.label },
      element("span", { class: "glyph", "aria-hidden": "true", text: style.letter }),
      element(
        "div",
        { class: "tone-main" },
        element(
          "p",
          { class: "tone-head" },
          element("strong", { class: "tone-label", text: data.label }),
          element("span", { class: "confidence", text: percent(data.confidence) }),
          element("span", { class: `shift shift-${data.shift_direction ?? "stable"}`, text: shiftText(data) }),
          element("span", { class: "time", text: `${fmt(data.start)}–${fmt(data.end)} s` }),
        ),
        element("p", { class: "subtext", text: data.subtext ?? "" }),
        (data.prosody_flags ?? []).length
          ? element("p", { class: "flags", text: data.prosody_flags.join(" · ").replaceAll("_", " ") })
          : null,
      ),
      element("div", { class: "feedback", role: "group", "aria-label": `Is “${data.label}” right?` }, up, down, correction, status),
    );
    up.addEventListener("click", () => this.sendFeedback(seq, "up", null));
    down.addEventListener("click", () => {
      correction.hidden = false;
      choice.focus();
    });
    correction.addEventListener("submit", (event) => {
      event.preventDefault();
      this.sendFeedback(seq, "down", choice.value || null);
    });
    this.toneRows.set(seq, { row, up, down, correction, status, choice });
    return row;
  }

  async sendFeedback(seq, verdict, label) {
    const parts = this.toneRows.get(seq);
    if (!parts) return;
    parts.status.textContent = "Saving…";
    const hadFocus = parts.row.contains(document.activeElement);
    try {
      await this.api.feedback(seq, verdict, label);
      this.markFeedback(seq, { verdict, label });
      // The correction form closes; keep a keyboard user on the row they were working on.
      if (hadFocus) (verdict === "up" ? parts.up : parts.down).focus();
    } catch (error) {
      parts.status.textContent = `Not saved: ${error.message}`;
    }
  }

  feedback(_seq, data) {
    this.markFeedback(data.seq, data);
  }

  markFeedback(seq, { verdict, label }) {
    const parts = this.toneRows.get(seq);
    if (!parts) return;
    parts.row.dataset.verdict = verdict;
    parts.up.setAttribute("aria-pressed", String(verdict === "up"));
    parts.down.setAttribute("aria-pressed", String(verdict === "down"));
    parts.correction.hidden = true;
    if (label) parts.choice.value = label;
    parts.status.textContent = verdict === "up" ? "Marked right." : `Marked wrong${label ? ` — ${label}` : ""}.`;
  }

  // Sound around the voice

  sound(_seq, data) {
    this.timeline.addSound("sound", data);
    const badges = this.$("#badges");
    badges.prepend(element("li", { class: `badge badge-${data.label}`, text: `${data.label.replaceAll("_", " ")} · ${fmt(data.start)}–${fmt(data.end)} s` }));
    while (badges.children.length > MAX_BADGES) badges.lastElementChild.remove();
  }

  speaker(_seq, data) {
    const now = this.$("#now");
    now.querySelector(".speaker")?.remove();
    now.append(element("p", { class: "speaker", text: `Speaker: ${data.label}` }));
  }

  transcript(_seq, data) {
    this.$("#transcript-card").hidden = false;
    const key = data.speaker_id ?? "";
    this.interim.get(key)?.remove();
    this.interim.delete(key);
    const line = element(
      "li",
      { class: data.final === false ? "line interim" : "line" },
      element("span", { class: "time", text: `${fmt(data.start)} s` }),
      data.speaker_id ? element("span", { class: "who", text: data.speaker_id }) : null,
      element("span", { class: "words", text: data.text ?? "" }),
      data.final === false ? element("span", { class: "visually-hidden", text: " (still listening)" }) : null,
    );
    if (data.final === false) this.interim.set(key, line);
    this.$("#transcript").append(line);
  }

  // Agent runs

  runStarted(_seq, data) {
    const text = element("div", { class: "run-text" });
    const state = element("span", { class: "run-state", text: "running" });
    const block = element(
      "article",
      { class: "run", "data-run": data.run_id, "data-status": "running" },
      element("header", {}, element("strong", { text: data.agent === "notes" ? "Notes" : data.agent }), " ", state),
      text,
    );
    this.$("#runs").prepend(block);
    this.runs.set(data.run_id, { block, text, state, status: "running" });
    this.onRunsChanged();
  }

  runDelta(_seq, data) {
    const run = this.runs.get(data.run_id);
    if (run) run.text.textContent += data.text;
  }

  runStatus(_seq, data) {
    const run = this.runs.get(data.run_id);
    if (!run) return;
    run.state.textContent = data.phase.replaceAll("_", " ");
    if (data.phase !== "input_required") this.clearInputForm();
  }

  runDone(_seq, data) {
    const run = this.runs.get(data.run_id);
    if (!run) return;
    run.status = data.status;
    run.block.dataset.status = data.status;
    run.state.textContent = data.status + (data.error?.message ? ` — ${data.error.message}` : "");
    // The whole output travels with run.done, so a page that missed deltas still converges.
    if (data.message?.content !== undefined) run.text.textContent = data.message.content;
    this.clearInputForm();
    this.onRunsChanged();
  }

  runInFlight() {
    for (const [id, run] of this.runs) if (run.status === "running") return id;
    return null;
  }

  inputRequired(_seq, data) {
    const form = this.$("#input-form");
    const controls = (data.fields ?? []).map((field) => {
      const id = `input-${field.name}`;
      const control = field.options?.length
        ? element("select", { id, name: field.name }, ...field.options.map((o) => element("option", { value: o, text: o })))
        : element("input", { id, name: field.name, type: field.type === "number" ? "number" : "text" });
      return element("p", {}, element("label", { for: id, text: field.label ?? field.name }), " ", control);
    });
    form.replaceChildren(
      element("p", { class: "reason", text: data.reason ?? "The notes need an answer." }),
      ...controls,
      element("button", { type: "submit", class: "primary", text: "Answer" }),
    );
    form.hidden = false;
    form.onsubmit = async (event) => {
      event.preventDefault();
      const input = Object.fromEntries(new FormData(form).entries());
      try {
        await this.api.sendInput(input);
        this.clearInputForm();
      } catch (error) {
        form.querySelector(".reason").textContent = error.message;
      }
    };
    this.announce("The notes need an answer.");
  }

  clearInputForm() {
    const form = this.$("#input-form");
    form.hidden = true;
    form.replaceChildren();
  }

  sessionState() {}

  async loadMessages() {
    // Runs compacted after they ended keep their output as messages; show any the log lacks.
    const { messages } = await this.api.messages();
    for (const message of messages) {
      if (message.role !== "assistant" || !message.run_id || this.runs.has(message.run_id)) continue;
      this.runStarted(null, { run_id: message.run_id, agent: "notes" });
      this.runDone(null, { run_id: message.run_id, status: "done", message });
    }
  }
}
