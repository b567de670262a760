/**
 * When to ask about each unfinished job again.
 *
 * Each job has its own delay: it starts short, grows by `factor` every time a poll sees no change, returns to the
 * start when the job moves, and the job leaves the schedule once it is final. One timer serves all jobs, and nothing
 * is polled while the page is hidden.
 */

export const POLL_INITIAL_MS = 1000;
export const POLL_FACTOR = 1.6;
export const POLL_MAX_MS = 15000;

/** The delay after a poll: back to the start when something changed, else longer, up to the cap. */
export function nextDelay(previous, changed, { initial = POLL_INITIAL_MS, factor = POLL_FACTOR, max = POLL_MAX_MS } = {}) {
  if (changed || !previous) return initial;
  return Math.min(max, Math.round(previous * factor));
}

export class PollScheduler {
  /**
   * @param {(id: string) => Promise<boolean>} poll asks about one job; resolves true when it changed
   * @param {{concurrency?: number, now?: () => number}} [options]
   */
  constructor(poll, { concurrency = 4, now = () => Date.now() } = {}) {
    this.poll = poll;
    this.concurrency = concurrency;
    this.now = now;
    /** @type {Map<string, {delay: number, dueAt: number, inFlight: boolean}>} */
    this.entries = new Map();
    this.timer = null;
    document.addEventListener("visibilitychange", () => {
      if (!document.hidden) this.pollAllSoon();
      this.arm();
    });
  }

  /** Start watching a job (a no-op if it is watched already); its first poll comes after the initial delay. */
  watch(id) {
    if (!this.entries.has(id)) {
      this.entries.set(id, { delay: POLL_INITIAL_MS, dueAt: this.now() + POLL_INITIAL_MS, inFlight: false });
      this.arm();
    }
  }

  /** Stop polling a job (it is final, or gone). */
  forget(id) {
    this.entries.delete(id);
    this.arm();
  }

  /** Stop polling every job (the user signed out). */
  clear() {
    this.entries.clear();
    this.arm();
  }

  /** Poll every watched job at once with a fresh short delay (e.g. when the tab becomes visible again). */
  pollAllSoon() {
    const now = this.now();
    for (const entry of this.entries.values()) {
      entry.delay = POLL_INITIAL_MS;
      entry.dueAt = now;
    }
  }

  get size() {
    return this.entries.size;
  }

  arm() {
    clearTimeout(this.timer);
    this.timer = null;
    if (document.hidden || this.entries.size === 0) return;
    let earliest = Infinity;
    for (const entry of this.entries.values()) {
      if (!entry.inFlight) earliest = Math.min(earliest, entry.dueAt);
    }
    if (earliest === Infinity) return;
    this.timer = setTimeout(() => this.tick(), Math.max(0, earliest - this.now()));
  }

  tick() {
    const now = this.now();
    let running = [...this.entries.values()].filter((entry) => entry.inFlight).length;
    const due = [...this.entries.entries()]
      .filter(([, entry]) => !entry.inFlight && entry.dueAt <= now)
      .sort((a, b) => a[1].dueAt - b[1].dueAt);
    for (const [id, entry] of due) {
      if (running >= this.concurrency) break;
      running += 1;
      entry.inFlight = true;
      this.run(id, entry);
    }
    this.arm();
  }

  async run(id, entry) {
    let changed = false;
    try {
      changed = await this.poll(id);
    } catch {
      changed = false; // a failed poll backs off like an unchanged one
    }
    entry.inFlight = false;
    entry.delay = nextDelay(entry.delay, changed);
    entry.dueAt = this.now() + entry.delay;
    this.arm();
  }
}
