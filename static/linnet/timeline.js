// The tone timeline: an SVG strip over the session's audio time. Each reading is a block
// whose height is its confidence; its letter and fill pattern name the tone (colour is never
// the only signal) and ▲ / ▼ above it mark a shift in intensity, bolder for a larger one.
// Queue and environment events (silence, dead air, a changed noise floor) sit in a lane below.

const SVG = "http://www.w3.org/2000/svg";
const HEIGHT = 150;
// Room at both ends for the first and last time labels.
const PAD = 14;
const TONE_TOP = 22;
const TONE_BOTTOM = 112;
const SOUND_TOP = 120;
const SOUND_BOTTOM = 132;

// Pattern per label: one of these is drawn over the label's colour.
const STYLE = {
  calm: { letter: "C", pattern: "solid" },
  animated: { letter: "A", pattern: "dots" },
  tense: { letter: "T", pattern: "stripes" },
  subdued: { letter: "S", pattern: "rows" },
  hesitant: { letter: "H", pattern: "checks" },
  questioning: { letter: "Q", pattern: "columns" },
};

export function toneStyle(label) {
  return STYLE[label] ?? { letter: (label || "?").slice(0, 1).toUpperCase(), pattern: "solid" };
}

function node(name, attributes = {}, text = null) {
  const element = document.createElementNS(SVG, name);
  for (const [key, value] of Object.entries(attributes)) element.setAttribute(key, value);
  if (text !== null) element.textContent = text;
  return element;
}

function patternDefs() {
  const defs = node("defs");
  const add = (id, shapes) => {
    const pattern = node("pattern", { id, width: 8, height: 8, patternUnits: "userSpaceOnUse" });
    shapes.forEach((shape) => pattern.append(shape));
    defs.append(pattern);
  };
  const ink = { class: "pattern-ink" };
  add("tl-dots", [node("circle", { cx: 4, cy: 4, r: 1.6, ...ink })]);
  add("tl-stripes", [node("path", { d: "M-2,10 L10,-2 M-2,2 L2,-2 M6,10 L10,6", "stroke-width": 1.6, ...ink })]);
  add("tl-rows", [node("rect", { x: 0, y: 3, width: 8, height: 1.6, ...ink })]);
  add("tl-checks", [node("rect", { x: 0, y: 0, width: 4, height: 4, ...ink }), node("rect", { x: 4, y: 4, width: 4, height: 4, ...ink })]);
  add("tl-columns", [node("rect", { x: 3, y: 0, width: 1.6, height: 8, ...ink })]);
  return defs;
}

export class Timeline {
  constructor(svg, { windowSeconds = null } = {}) {
    this.svg = svg;
    // Live pages follow the last `windowSeconds`; a reopened session shows its whole length.
    this.windowSeconds = windowSeconds;
    this.tones = [];
    this.sounds = [];
    this.pending = false;
    // The drawing is laid out at the element's own width, so letters keep their shape on a phone.
    new ResizeObserver(() => this.schedule()).observe(svg);
  }

  addTone(seq, data) {
    this.tones.push({ seq, ...data });
    this.schedule();
  }

  addSound(type, data) {
    this.sounds.push({ type, ...data });
    this.schedule();
  }

  schedule() {
    if (this.pending) return;
    this.pending = true;
    requestAnimationFrame(() => {
      this.pending = false;
      this.render();
    });
  }

  range(width) {
    const end = Math.max(1, ...this.tones.map((t) => t.end ?? 0), ...this.sounds.map((s) => s.end ?? 0));
    if (!this.windowSeconds) return [0, end];
    // About 14 px a second at the least, so a phone shows fewer, readable blocks.
    const span = Math.min(this.windowSeconds, Math.max(20, Math.round(width / 14)));
    return [Math.max(0, end - span), Math.max(end, span)];
  }

  render() {
    const width = Math.max(240, Math.round(this.svg.clientWidth || 1000));
    this.svg.setAttribute("viewBox", `0 0 ${width} ${HEIGHT}`);
    const [from, to] = this.range(width);
    const x = (seconds) => PAD + ((seconds - from) / (to - from)) * (width - 2 * PAD);
    const visible = (item) => (item.end ?? 0) > from;
    const children = [patternDefs(), node("rect", { x: 0, y: 0, width, height: HEIGHT, class: "tl-bg" })];
    for (const line of [TONE_BOTTOM, SOUND_BOTTOM]) {
      children.push(node("line", { x1: 0, x2: width, y1: line, y2: line, class: "tl-axis" }));
    }
    const step = niceStep((to - from) / Math.max(2, Math.floor(width / 110)));
    for (let t = Math.ceil(from / step) * step; t <= to; t += step) {
      children.push(node("line", { x1: x(t), x2: x(t), y1: SOUND_BOTTOM, y2: SOUND_BOTTOM + 4, class: "tl-axis" }));
      children.push(node("text", { x: x(t), y: HEIGHT - 3, class: "tl-tick" }, `${Math.round(t)}s`));
    }
    for (const sound of this.sounds.filter(visible)) {
      const left = Math.max(0, x(sound.start ?? 0));
      const span = Math.max(2, x(sound.end ?? 0) - left);
      const rect = node("rect", { x: left, y: SOUND_TOP, width: span, height: SOUND_BOTTOM - SOUND_TOP, class: `tl-sound tl-${sound.label}` });
      rect.append(node("title", {}, `${sound.label.replaceAll("_", " ")} ${fmt(sound.start)}–${fmt(sound.end)} s`));
      children.push(rect);
    }
    for (const tone of this.tones.filter(visible)) {
      const left = Math.max(0, x(tone.start ?? 0));
      const span = Math.max(3, x(tone.end ?? 0) - left - 1.5);
      const confidence = Math.max(0.08, Math.min(1, tone.confidence ?? 0));
      const top = TONE_BOTTOM - (TONE_BOTTOM - TONE_TOP) * confidence;
      const style = toneStyle(tone.label);
      const group = node("g", { class: `tl-tone tone-${tone.label}`, "data-seq": tone.seq });
      group.append(node("title", {}, `${tone.label}, ${Math.round(confidence * 100)}% confident, ${tone.shift_direction ?? "stable"} — ${fmt(tone.start)}–${fmt(tone.end)} s`));
      group.append(node("rect", { x: left, y: top, width: span, height: TONE_BOTTOM - top, class: "tl-fill" }));
      if (style.pattern !== "solid") {
        group.append(node("rect", { x: left, y: top, width: span, height: TONE_BOTTOM - top, fill: `url(#tl-${style.pattern})` }));
      }
      if (span >= 12) {
        group.append(node("text", { x: left + span / 2, y: TONE_BOTTOM - 4, class: "tl-letter" }, style.letter));
      }
      const arrow = { escalating: "▲", "de-escalating": "▼" }[tone.shift_direction];
      if (arrow) {
        const magnitude = Math.max(0.3, Math.min(1, tone.shift_magnitude ?? 0));
        group.append(node("text", { x: left + span / 2, y: top - 4, class: "tl-shift", "font-size": 9 + magnitude * 9 }, arrow));
      }
      children.push(group);
    }
    this.svg.replaceChildren(...children);
  }
}

function niceStep(raw) {
  for (const step of [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 1800, 3600]) if (step >= raw) return step;
  return 7200;
}

export function fmt(seconds) {
  return (seconds ?? 0).toFixed(1);
}
