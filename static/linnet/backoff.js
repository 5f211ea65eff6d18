// Reconnect delays: exponential with full jitter, so a server restart is not met by every
// tab at the same instant.

export class Backoff {
  constructor({ baseMs = 500, maxMs = 15_000 } = {}) {
    this.baseMs = baseMs;
    this.maxMs = maxMs;
    this.attempt = 0;
  }

  next() {
    const ceiling = Math.min(this.maxMs, this.baseMs * 2 ** this.attempt);
    this.attempt += 1;
    return Math.round(ceiling / 2 + Math.random() * (ceiling / 2));
  }

  reset() {
    this.attempt = 0;
  }
}
