/**
 * Keeps the job store in step with the API.
 *
 * The list is loaded once (and again on demand, or when the tab comes back after a while); after that each
 * unfinished job is polled on its own through `GET /api/jobs/<id>` with a backoff, and finished jobs are never asked
 * about again. A job the server no longer has (deleted in another tab or on another device) leaves the store as soon
 * as an answer says so. Every answer is written to the store; an answer that arrives after a sign-out is dropped.
 */

import { JOB_NOT_FOUND } from "./api.js";
import { PollScheduler } from "./poller.js";
import { FINAL_STATES, summarize } from "./states.js";

const LIST_RETRY_MS = [2000, 5000, 10000, 30000];
const LIST_STALE_MS = 30_000;

/**
 * Ids a list answer should have held but did not: those shown before it was asked for and, when it is only the
 * newest page, created no earlier than its oldest job.
 */
export function missingFromList(store, shown, jobs, more) {
  const listed = new Set(jobs.map((job) => job.id));
  const oldest = more && jobs.length ? jobs[jobs.length - 1].created_at || "" : "";
  return shown.filter((id) => store.has(id) && !listed.has(id) && (store.job(id).created_at || "") >= oldest);
}

export class JobSync {
  /**
   * @param {{api: import("./api.js").Api, store: import("./jobstore.js").JobStore,
   *          announce: (message: string) => void}} deps
   */
  constructor({ api, store, announce }) {
    this.api = api;
    this.store = store;
    this.announce = announce;
    this.scheduler = new PollScheduler((id) => this.refresh([id]));
    this.listRetry = 0;
    this.listTimer = null;
    this.loadedAt = 0;
    this.active = false;
    store.addEventListener("change", (event) => this.follow(event.detail));
    // Jobs submitted from another tab or device show up when the user comes back to this one.
    document.addEventListener("visibilitychange", () => {
      if (this.active && !document.hidden && Date.now() - this.loadedAt > LIST_STALE_MS) this.load();
    });
  }

  /** Poll exactly the unfinished jobs the store holds; stop everything when it is cleared. */
  follow(change) {
    if (change.kind === "put") {
      if (FINAL_STATES.has(change.job.status)) this.scheduler.forget(change.job.id);
      else this.scheduler.watch(change.job.id);
    } else if (change.kind === "remove") {
      for (const job of change.jobs) this.scheduler.forget(job.id);
    } else if (change.kind === "clear") {
      this.active = false;
      clearTimeout(this.listTimer);
      this.listRetry = 0;
      this.scheduler.clear();
    }
  }

  /**
   * Load (or reload) the newest jobs, and check the jobs the answer should have held but did not; on failure record
   * why and try again later with a growing delay.
   */
  async load({ announceResult = false } = {}) {
    clearTimeout(this.listTimer);
    this.active = true;
    const { store } = this;
    const generation = store.generation;
    const shown = store.ids(); // a job added while the request is out is not judged by its answer
    store.setListStatus({ loading: true });
    try {
      const { jobs, more } = await this.api.listJobs();
      if (generation !== store.generation) return;
      this.loadedAt = Date.now();
      this.listRetry = 0;
      store.setListStatus({ failure: null });
      const current = jobs.filter((job) => !store.wasRemoved(job.id));
      for (const job of current.reverse()) store.put(job);
      await this.refresh(missingFromList(store, shown, jobs, more));
      if (generation !== store.generation) return;
      if (announceResult) this.announce(`Job list updated: ${summarize(store.jobs())}.`);
    } catch (error) {
      if (generation !== store.generation) return;
      const wait = LIST_RETRY_MS[Math.min(this.listRetry, LIST_RETRY_MS.length - 1)];
      this.listRetry += 1;
      store.setListStatus({ failure: { message: error.message, retryInMs: wait } });
      this.listTimer = setTimeout(() => this.load(), wait);
    } finally {
      store.setListStatus({ loading: false });
    }
  }

  /**
   * Ask the API about each job (strongly consistent, unlike the list, which may lag a write); the store takes the
   * answers, and the jobs answered `job_not_found` leave it together. Resolves true when anything held changed.
   */
  async refresh(ids) {
    const { store } = this;
    const generation = store.generation;
    const answers = await Promise.allSettled(ids.map((id) => this.api.getJob(id)));
    if (generation !== store.generation) return false;
    const gone = ids.filter((id, i) => answers[i].reason?.code === JOB_NOT_FOUND);
    let changed = gone.length > 0;
    answers.forEach((answer, i) => {
      // A job taken off meanwhile (deleted here) does not come back with a late answer.
      if (answer.status === "fulfilled" && store.has(ids[i])) {
        changed = store.put(answer.value, { announce: true }) || changed;
      }
    });
    store.remove(gone, { reason: "elsewhere" });
    return changed;
  }

  /** The job as the API has it now (e.g. for a fresh download link), held in the store; a job the server no longer
   * has leaves the store, and the error is thrown on. */
  async fetch(id) {
    try {
      const job = await this.api.getJob(id);
      this.store.put(job, { announce: true });
      return job;
    } catch (error) {
      if (error.code === JOB_NOT_FOUND) this.store.remove([id], { reason: "elsewhere" });
      throw error;
    }
  }
}
