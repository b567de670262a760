/**
 * The live list of jobs: newest first, status badges, elapsed time, failure reasons and download links.
 *
 * The list is loaded once (and again on demand); after that each unfinished job is polled on its own through
 * `GET /api/jobs/<id>` with a backoff, and finished jobs are never asked about again. A job the server no longer has
 * (deleted in another tab or on another device) leaves the list as soon as an answer says so.
 */

import { JOB_NOT_FOUND } from "./api.js";
import { baseName, formatDuration, formatWhen, jobName, parseTime } from "./format.js";
import { firstControl, renderActions } from "./jobactions.js";
import { PollScheduler } from "./poller.js";
import { FINAL_STATES, statusInfo } from "./states.js";

const DOWNLOAD_URL_MARGIN_MS = 30_000;
const LIST_RETRY_MS = [2000, 5000, 10000, 30000];
const LIST_STALE_MS = 30_000;

/** How long a presigned URL stays valid, from its query (SigV4 `X-Amz-Expires`, or SigV2 `Expires` epoch). */
export function urlLifetimeMs(url, fetchedAt) {
  try {
    const query = new URL(url, window.location.href).searchParams;
    const seconds = Number(query.get("X-Amz-Expires"));
    if (seconds > 0) return seconds * 1000;
    const epoch = Number(query.get("Expires"));
    if (epoch > 0) return epoch * 1000 - fetchedAt;
  } catch {
    // Not a URL we can read: treat it as short-lived.
  }
  return 60_000;
}

/** Elapsed time of a job: until now while it runs, until it finished once it is final. */
export function elapsedMs(job, now = Date.now()) {
  const start = parseTime(job.created_at);
  if (Number.isNaN(start)) return Number.NaN;
  if (FINAL_STATES.has(job.status)) {
    const end = parseTime(job.finished_at || job.updated_at);
    return Number.isNaN(end) ? Number.NaN : end - start;
  }
  return now - start;
}

/** How long a job waited (submitted -> started on its VM) and ran (started -> finished); NaN for a phase it has
 * not begun or ended. */
export function phaseDurationsMs(job) {
  const created = parseTime(job.created_at);
  const started = job.started_at ? parseTime(job.started_at) : Number.NaN;
  const finished = job.finished_at ? parseTime(job.finished_at) : Number.NaN;
  return { waited: started - created, ran: finished - started };
}

export class JobList {
  /**
   * @param {{api: import("./api.js").Api, announce: (message: string) => void}} deps
   */
  constructor({ api, announce }) {
    this.api = api;
    this.announce = announce;
    this.section = document.querySelector(".jobs-card");
    this.listEl = document.getElementById("jobs");
    this.emptyEl = document.getElementById("jobs-empty");
    this.errorEl = document.getElementById("jobs-error");
    this.metaEl = document.getElementById("jobs-meta");
    this.heading = document.getElementById("jobs-heading");
    this.template = document.getElementById("job-template");
    /** @type {Map<string, {job: object, el: HTMLElement, outputUrl?: string, urlFetchedAt?: number}>} */
    this.entries = new Map();
    /** Jobs this page took off as deleted: a list answer that still has one (the index lags) does not bring it back. */
    this.removed = new Set();
    this.scheduler = new PollScheduler((id) => this.refreshJobs([id]));
    this.listRetry = 0;
    this.listTimer = null;
    this.ticker = null;
    this.loadedAt = 0;
    /** Counts sign-outs: an answer that arrives after one belongs to the previous user and is dropped. */
    this.generation = 0;
    this.active = false;
    document.getElementById("refresh-button").addEventListener("click", () => this.load({ announceResult: true }));
    // Jobs submitted from another tab or device show up when the user comes back to this one.
    document.addEventListener("visibilitychange", () => {
      if (this.active && !document.hidden && Date.now() - this.loadedAt > LIST_STALE_MS) this.load();
    });
  }

  /**
   * Load (or reload) the newest jobs, and check the rows the answer should have held but did not; on failure say so
   * and try again later with a growing delay.
   */
  async load({ announceResult = false } = {}) {
    clearTimeout(this.listTimer);
    this.active = true;
    const generation = this.generation;
    const shown = [...this.entries.keys()]; // a row added while the request is out is not judged by its answer
    this.section.setAttribute("aria-busy", "true");
    try {
      const { jobs, more } = await this.api.listJobs();
      if (generation !== this.generation) return;
      this.loadedAt = Date.now();
      this.listRetry = 0;
      this.errorEl.hidden = true;
      const current = jobs.filter((job) => !this.removed.has(job.id));
      for (const job of current.reverse()) this.upsert(job, { announceChange: false });
      await this.refreshJobs(this.missing(shown, jobs, more));
      if (generation !== this.generation) return;
      if (announceResult) this.announce(`Job list updated: ${this.summary()}.`);
    } catch (error) {
      if (generation !== this.generation) return;
      const wait = LIST_RETRY_MS[Math.min(this.listRetry, LIST_RETRY_MS.length - 1)];
      this.listRetry += 1;
      this.errorEl.textContent = `Could not load the jobs: ${error.message} Trying again in ${Math.round(wait / 1000)} s.`;
      this.errorEl.hidden = false;
      this.listTimer = setTimeout(() => this.load(), wait);
    } finally {
      this.section.setAttribute("aria-busy", "false");
      this.renderMeta();
    }
  }

  /** Forget every job and stop asking about them (the user signed out). */
  clear() {
    this.generation += 1;
    this.active = false;
    clearTimeout(this.listTimer);
    this.listRetry = 0;
    this.scheduler.clear();
    this.entries.clear();
    this.removed.clear();
    this.listEl.replaceChildren();
    this.errorEl.hidden = true;
    this.updateTicker();
    this.renderMeta();
  }

  /** A job just created by the form: show it on top and start watching it. */
  add(job) {
    this.upsert(job, { announceChange: false });
    const entry = this.entries.get(job.id);
    entry.el.classList.add("job--new");
    entry.el.addEventListener("animationend", () => entry.el.classList.remove("job--new"), { once: true });
  }

  /** The row of a job shown in the list, or undefined. */
  row(id) {
    return this.entries.get(id)?.el;
  }

  /**
   * Take a job off the list (it was deleted) and stop asking about it. Focus in its row (or on the page, when
   * `orphanedFocus` says the row's own request left it there) goes to the next job's first control, or to the
   * list's heading.
   */
  remove(id, { orphanedFocus = false } = {}) {
    const entry = this.entries.get(id);
    if (!entry) return;
    const next = entry.el.nextElementSibling;
    const focus = document.activeElement;
    const hadFocus = entry.el.contains(focus) || (orphanedFocus && focus === document.body);
    this.entries.delete(id);
    this.removed.add(id);
    this.scheduler.forget(id);
    entry.el.remove();
    this.updateTicker();
    this.renderMeta();
    if (hadFocus) (next && firstControl(next) || this.heading).focus();
  }

  /** Jobs the server no longer has leave the list, said once: the job's name, or how many went together. */
  gone(ids, options) {
    const names = ids.filter((id) => this.entries.has(id)).map((id) => jobName(this.entries.get(id).job));
    for (const id of ids) this.remove(id, options);
    if (names.length > 1) this.announce(`${names.length} jobs deleted elsewhere.`);
    else if (names.length === 1) this.announce(`${names[0]}: deleted elsewhere.`);
  }

  /**
   * Rows a list answer should have held but did not: those shown before it was asked for and, when it is only the
   * newest page, created no earlier than its oldest job.
   */
  missing(shown, jobs, more) {
    const listed = new Set(jobs.map((job) => job.id));
    const oldest = more && jobs.length ? jobs[jobs.length - 1].created_at || "" : "";
    return shown.filter((id) => this.entries.has(id) && !listed.has(id)
      && (this.entries.get(id).job.created_at || "") >= oldest);
  }

  /**
   * Ask the API about each job (strongly consistent, unlike the list, which may lag a write); rows show the answers,
   * and the jobs answered `job_not_found` leave together. Resolves true when anything shown changed.
   */
  async refreshJobs(ids) {
    const generation = this.generation;
    const answers = await Promise.allSettled(ids.map((id) => this.api.getJob(id)));
    if (generation !== this.generation) return false;
    const gone = ids.filter((id, i) => answers[i].reason?.code === JOB_NOT_FOUND);
    let changed = gone.length > 0;
    answers.forEach((answer, i) => {
      // A row taken off meanwhile (deleted here) does not come back with a late answer.
      if (answer.status === "fulfilled" && this.entries.has(ids[i])) {
        changed = this.upsert(answer.value, { announceChange: true }) || changed;
      }
    });
    this.gone(gone);
    return changed;
  }

  /** Insert or update a job's row; returns true when the job changed. */
  upsert(job, { announceChange }) {
    let entry = this.entries.get(job.id);
    const before = entry ? entry.job : null;
    if (!entry) {
      entry = { job, el: this.createRow(job.id) };
      this.entries.set(job.id, entry);
      this.insertInOrder(entry);
    }
    const changed = !before || before.status !== job.status || before.updated_at !== job.updated_at;
    entry.job = job;
    if (job.output_url) {
      entry.outputUrl = job.output_url;
      entry.urlFetchedAt = Date.now();
    }
    this.render(entry);
    if (before && before.status !== job.status && announceChange) this.announceStatus(job);
    if (FINAL_STATES.has(job.status)) this.scheduler.forget(job.id);
    else this.scheduler.watch(job.id);
    if (changed) this.renderMeta();
    this.updateTicker();
    return changed;
  }

  /** Newest first: before the first row (in page order) that was created earlier. */
  insertInOrder(entry) {
    const created = entry.job.created_at || "";
    const next = [...this.listEl.children].find((row) => {
      const other = this.entries.get(row.dataset.jobId);
      return other && other !== entry && (other.job.created_at || "") < created;
    });
    this.listEl.insertBefore(entry.el, next || null);
    this.emptyEl.hidden = true;
  }

  createRow(id) {
    const el = this.template.content.firstElementChild.cloneNode(true);
    el.dataset.jobId = id;
    el.id = `job-${id}`; // the target of a "retried as" link
    el.querySelector('[data-slot="download"]').addEventListener("click", (event) => this.download(event, id));
    return el;
  }

  render(entry) {
    const { job, el } = entry;
    const slot = (name) => el.querySelector(`[data-slot="${name}"]`);
    const info = statusInfo(job.status);
    const fileName = baseName(job.input_file_path) || "(no file)";
    el.dataset.status = job.status;
    slot("badge").className = `badge badge--${String(job.status).toLowerCase()}`;
    slot("status").textContent = info.label;
    slot("file").textContent = fileName;
    slot("file").title = fileName;
    slot("text").textContent = job.input_text || "";
    slot("text").title = job.input_text || "";
    slot("detail").textContent = info.detail;
    slot("detail").hidden = !info.detail;
    slot("created").textContent = `Submitted ${formatWhen(job.created_at)}`;
    slot("id").textContent = String(job.id).slice(0, 8);
    slot("id").title = `Job id ${job.id}`;
    const error = slot("error");
    error.hidden = job.status !== "FAILED";
    error.textContent = job.status === "FAILED" ? job.error || "The job failed; no reason was recorded." : "";
    const link = slot("download");
    if (job.status === "SUCCEEDED") {
      const outputName = baseName(job.output_file_path) || "output";
      link.hidden = false;
      link.href = entry.outputUrl || `#job-${job.id}`;
      link.setAttribute("download", outputName);
      link.setAttribute("aria-label", `Download ${outputName}`);
      link.title = outputName;
    } else {
      link.hidden = true;
    }
    renderActions(el, job, fileName);
    this.renderElapsed(entry);
  }

  renderElapsed(entry, now = Date.now()) {
    const slot = entry.el.querySelector('[data-slot="elapsed"]');
    const ms = elapsedMs(entry.job, now);
    if (Number.isNaN(ms)) {
      slot.textContent = "";
      return;
    }
    const final = FINAL_STATES.has(entry.job.status);
    const { waited, ran } = phaseDurationsMs(entry.job);
    const phases = final && !Number.isNaN(ran) ? ` (waited ${formatDuration(waited)}, ran ${formatDuration(ran)})` : "";
    slot.textContent = final ? `took ${formatDuration(ms)}${phases}` : formatDuration(ms);
    slot.title = final ? "Time from submission to the end of the job; waited: until its VM started it" : "Time since submission";
  }

  /** Tick elapsed times once a second while any job is unfinished; stop when all are final. */
  updateTicker() {
    const active = [...this.entries.values()].some((entry) => !FINAL_STATES.has(entry.job.status));
    if (active && !this.ticker) {
      this.ticker = setInterval(() => {
        const now = Date.now();
        for (const entry of this.entries.values()) {
          if (!FINAL_STATES.has(entry.job.status)) this.renderElapsed(entry, now);
        }
      }, 1000);
    } else if (!active && this.ticker) {
      clearInterval(this.ticker);
      this.ticker = null;
    }
  }

  summary() {
    const jobs = [...this.entries.values()].map((entry) => entry.job);
    const active = jobs.filter((job) => !FINAL_STATES.has(job.status)).length;
    const parts = [];
    if (active) parts.push(`${active} in progress`);
    for (const status of FINAL_STATES) {
      const count = jobs.filter((job) => job.status === status).length;
      if (count) parts.push(`${count} ${statusInfo(status).label.toLowerCase()}`);
    }
    return parts.length ? parts.join(", ") : "no jobs";
  }

  renderMeta() {
    this.metaEl.textContent = this.entries.size ? this.summary() : "";
    this.emptyEl.hidden = this.entries.size > 0 || !this.errorEl.hidden;
  }

  announceStatus(job) {
    const name = jobName(job);
    const info = statusInfo(job.status);
    if (job.status === "SUCCEEDED") this.announce(`${name}: succeeded. The output is ready to download.`);
    else if (job.status === "FAILED") this.announce(`${name}: failed. ${job.error || ""}`.trim());
    else this.announce(`${name}: ${info.label.toLowerCase()}.`);
  }

  /**
   * Follow the output link, fetching a fresh presigned URL first when the one we hold is missing or about to
   * expire (links on a page left open would otherwise fail with S3's "Request has expired").
   */
  async download(event, id) {
    const entry = this.entries.get(id);
    if (!entry) return;
    const fetchedAt = entry.urlFetchedAt || 0;
    const fresh = entry.outputUrl
      && Date.now() < fetchedAt + urlLifetimeMs(entry.outputUrl, fetchedAt) - DOWNLOAD_URL_MARGIN_MS;
    if (fresh) return; // let the browser follow the link
    event.preventDefault();
    const link = event.currentTarget;
    link.setAttribute("aria-busy", "true");
    try {
      const job = await this.api.getJob(id);
      this.upsert(job, { announceChange: true });
      if (job.output_url) window.location.assign(job.output_url);
      else this.announce("The output is not available for download.");
    } catch (error) {
      if (error.code === JOB_NOT_FOUND) this.gone([id]);
      else this.announce(`The download link could not be fetched: ${error.message}`);
    } finally {
      link.removeAttribute("aria-busy");
    }
  }
}
