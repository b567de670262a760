/**
 * The page's jobs: what the API last said about each, the jobs this page took off (so that a lagging list answer does
 * not bring one back), the list's loading state, and a generation that counts sign-outs. It knows nothing of the DOM
 * or of the API: callers write to it, and it announces every change with a `change` event whose `detail.kind` says
 * what happened:
 *
 * - `put`: `{job, before, changed, announce, highlight}`; `before` is the job as held until then (null for a new one),
 *   `announce` asks for a status change to be said, `highlight` marks a job just created on this page.
 * - `remove`: `{jobs, reason, orphanedFocus}`; the jobs taken off, in the order asked, `reason` "deleted" (by this
 *   page) or "elsewhere" (the server no longer has them); `orphanedFocus` says the removing request was the row's own.
 * - `clear`: every job forgotten (the user signed out).
 * - `list`: the list's loading state changed (`listStatus`).
 */

export class JobStore extends EventTarget {
  /** @type {Map<string, {job: object, outputUrl?: string, urlFetchedAt?: number}>} */
  #entries = new Map();
  #removed = new Set();
  #generation = 0;
  #list = { loading: false, failure: null };

  /** Counts sign-outs: an answer that arrives after one belongs to the previous user and is dropped. */
  get generation() {
    return this.#generation;
  }

  has(id) {
    return this.#entries.has(id);
  }

  /** The job as last known, or undefined. */
  job(id) {
    return this.#entries.get(id)?.job;
  }

  /** The ids held, in the order they were first put. */
  ids() {
    return [...this.#entries.keys()];
  }

  jobs() {
    return [...this.#entries.values()].map((entry) => entry.job);
  }

  get size() {
    return this.#entries.size;
  }

  /** True for a job this page took off: a list answer that still has it (the index lags) does not bring it back. */
  wasRemoved(id) {
    return this.#removed.has(id);
  }

  /** The last download URL an answer carried for the job, and when it came (later answers may carry none). */
  outputUrl(id) {
    const entry = this.#entries.get(id);
    return entry?.outputUrl ? { url: entry.outputUrl, fetchedAt: entry.urlFetchedAt || 0 } : null;
  }

  /** `{loading, failure}`: whether the list is being loaded, and the last load's failure (`{message, retryInMs}`: why,
   * and when it is tried again; a new object for each failure), or null once a load succeeded. */
  get listStatus() {
    return { ...this.#list };
  }

  /** Hold the job as the server (or an action's answer) has it; returns true when the job changed. */
  put(job, { announce = false, highlight = false } = {}) {
    let entry = this.#entries.get(job.id);
    const before = entry ? entry.job : null;
    if (!entry) {
      entry = { job };
      this.#entries.set(job.id, entry);
    }
    const changed = !before || before.status !== job.status || before.updated_at !== job.updated_at;
    entry.job = job;
    if (job.output_url) {
      entry.outputUrl = job.output_url;
      entry.urlFetchedAt = Date.now();
    }
    this.#emit({ kind: "put", job, before, changed, announce, highlight });
    return changed;
  }

  /** Take jobs off (those held; others are ignored) and remember them as removed. */
  remove(ids, { reason = "deleted", orphanedFocus = false } = {}) {
    const jobs = [];
    for (const id of ids) {
      const entry = this.#entries.get(id);
      if (!entry) continue;
      this.#entries.delete(id);
      this.#removed.add(id);
      jobs.push(entry.job);
    }
    if (jobs.length) this.#emit({ kind: "remove", jobs, reason, orphanedFocus });
  }

  /** Forget every job (the user signed out); answers to requests made before are dropped from now on. */
  clear() {
    this.#generation += 1;
    this.#entries.clear();
    this.#removed.clear();
    this.#list = { ...this.#list, failure: null };
    this.#emit({ kind: "clear" });
  }

  /** Record the list's loading state: `loading`, `failure`, or both (see `listStatus`). */
  setListStatus(status) {
    this.#list = { ...this.#list, ...status };
    this.#emit({ kind: "list" });
  }

  #emit(detail) {
    this.dispatchEvent(new CustomEvent("change", { detail }));
  }
}
