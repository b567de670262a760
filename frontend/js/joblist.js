/**
 * The list of jobs as the page shows it: newest first, status badges, elapsed time, failure reasons and download
 * links. It renders what the job store announces (and says what changed in the live region), keeps focus in place
 * when a row leaves, and forwards the user's requests: the Refresh button, and a download whose link is stale.
 */

import { JOB_NOT_FOUND } from "./api.js";
import { baseName, formatDuration, formatWhen, jobName, parseTime } from "./format.js";
import { firstControl, renderActions } from "./jobactions.js";
import { FINAL_STATES, statusInfo, summarize } from "./states.js";

const DOWNLOAD_URL_MARGIN_MS = 30_000;

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


export class JobListView {
  /**
   * @param {{store: import("./jobstore.js").JobStore, announce: (message: string) => void,
   *          refresh: () => void, fetchJob: (id: string) => Promise<object>}} deps `refresh` reloads the list (the
   *          Refresh button); `fetchJob` asks the API about one job again (a download whose link is stale)
   */
  constructor({ store, announce, refresh, fetchJob }) {
    this.store = store;
    this.announce = announce;
    this.fetchJob = fetchJob;
    this.section = document.querySelector(".jobs-card");
    this.listEl = document.getElementById("jobs");
    this.emptyEl = document.getElementById("jobs-empty");
    this.errorEl = document.getElementById("jobs-error");
    this.metaEl = document.getElementById("jobs-meta");
    this.heading = document.getElementById("jobs-heading");
    this.template = document.getElementById("job-template");
    /** @type {Map<string, HTMLElement>} each shown job's row */
    this.rows = new Map();
    this.shownFailure = null;
    this.ticker = null;
    document.getElementById("refresh-button").addEventListener("click", () => refresh());
    store.addEventListener("change", (event) => this.show(event.detail));
  }

  /** The row of a job shown in the list, or undefined. */
  row(id) {
    return this.rows.get(id);
  }

  /** Show one change of the store. */
  show(change) {
    if (change.kind === "put") this.showJob(change);
    else if (change.kind === "remove") this.removeRows(change);
    else if (change.kind === "clear") this.clear();
    else if (change.kind === "list") this.showListStatus(this.store.listStatus);
  }

  /** Insert or update a job's row, and say a change of its state when asked to. */
  showJob({ job, before, changed, announce, highlight }) {
    let el = this.rows.get(job.id);
    if (!el) {
      el = this.createRow(job.id);
      this.rows.set(job.id, el);
      this.insertInOrder(el, job);
    }
    this.render(el, job);
    if (before && before.status !== job.status && announce) this.announceStatus(job);
    if (changed) this.renderMeta();
    this.updateTicker();
    if (highlight) {
      el.classList.add("job--new");
      el.addEventListener("animationend", () => el.classList.remove("job--new"), { once: true });
    }
  }

  /**
   * Take the jobs' rows off, then say so. Focus in a row (or on the page, when `orphanedFocus` says the row's own
   * request left it there) goes to the next job's first control, or to the list's heading.
   */
  removeRows({ jobs, reason, orphanedFocus }) {
    for (const job of jobs) {
      const el = this.rows.get(job.id);
      if (!el) continue;
      const next = el.nextElementSibling;
      const focus = document.activeElement;
      const hadFocus = el.contains(focus) || (orphanedFocus && focus === document.body);
      this.rows.delete(job.id);
      el.remove();
      this.updateTicker();
      this.renderMeta();
      if (hadFocus) (next && firstControl(next) || this.heading).focus();
    }
    const names = jobs.map(jobName);
    if (reason === "deleted") for (const name of names) this.announce(`${name}: deleted.`);
    else if (names.length > 1) this.announce(`${names.length} jobs deleted elsewhere.`);
    else this.announce(`${names[0]}: deleted elsewhere.`);
  }

  /** Forget every row (the user signed out). */
  clear() {
    this.rows.clear();
    this.listEl.replaceChildren();
    this.errorEl.hidden = true;
    this.shownFailure = null;
    this.updateTicker();
    this.renderMeta();
  }

  /** Busy while the list loads; why it failed, and when it is tried again, until a load succeeds. */
  showListStatus({ loading, failure }) {
    this.section.setAttribute("aria-busy", String(loading));
    if (failure !== this.shownFailure) {
      this.shownFailure = failure;
      if (failure) {
        const seconds = Math.round(failure.retryInMs / 1000);
        this.errorEl.textContent = `Could not load the jobs: ${failure.message} Trying again in ${seconds} s.`;
      }
      this.errorEl.hidden = !failure;
    }
    this.renderMeta();
  }

  /** Newest first: before the first row (in page order) that was created earlier. */
  insertInOrder(el, job) {
    const created = job.created_at || "";
    const next = [...this.listEl.children].find((row) => {
      const other = this.store.job(row.dataset.jobId);
      return row !== el && other && (other.created_at || "") < created;
    });
    this.listEl.insertBefore(el, next || null);
    this.emptyEl.hidden = true;
  }

  createRow(id) {
    const el = this.template.content.firstElementChild.cloneNode(true);
    el.dataset.jobId = id;
    el.id = `job-${id}`; // the target of a "retried as" link
    el.querySelector('[data-slot="download"]').addEventListener("click", (event) => this.download(event, id));
    return el;
  }

  render(el, job) {
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
      link.href = this.store.outputUrl(job.id)?.url || `#job-${job.id}`;
      link.setAttribute("download", outputName);
      link.setAttribute("aria-label", `Download ${outputName}`);
      link.title = outputName;
    } else {
      link.hidden = true;
    }
    renderActions(el, job, fileName);
    this.renderElapsed(el, job);
  }

  renderElapsed(el, job, now = Date.now()) {
    const slot = el.querySelector('[data-slot="elapsed"]');
    const ms = elapsedMs(job, now);
    if (Number.isNaN(ms)) {
      slot.textContent = "";
      return;
    }
    const final = FINAL_STATES.has(job.status);
    const { waited, ran } = phaseDurationsMs(job);
    const phases = final && !Number.isNaN(ran) ? ` (waited ${formatDuration(waited)}, ran ${formatDuration(ran)})` : "";
    slot.textContent = final ? `took ${formatDuration(ms)}${phases}` : formatDuration(ms);
    slot.title = final ? "Time from submission to the end of the job; waited: until its VM started it" : "Time since submission";
  }

  /** Tick elapsed times once a second while any job is unfinished; stop when all are final. */
  updateTicker() {
    const active = this.store.jobs().some((job) => !FINAL_STATES.has(job.status));
    if (active && !this.ticker) {
      this.ticker = setInterval(() => {
        const now = Date.now();
        for (const [id, el] of this.rows) {
          const job = this.store.job(id);
          if (job && !FINAL_STATES.has(job.status)) this.renderElapsed(el, job, now);
        }
      }, 1000);
    } else if (!active && this.ticker) {
      clearInterval(this.ticker);
      this.ticker = null;
    }
  }

  renderMeta() {
    this.metaEl.textContent = this.store.size ? summarize(this.store.jobs()) : "";
    this.emptyEl.hidden = this.store.size > 0 || !this.errorEl.hidden;
  }

  announceStatus(job) {
    const name = jobName(job);
    const info = statusInfo(job.status);
    if (job.status === "SUCCEEDED") this.announce(`${name}: succeeded. The output is ready to download.`);
    else if (job.status === "FAILED") this.announce(`${name}: failed. ${job.error || ""}`.trim());
    else this.announce(`${name}: ${info.label.toLowerCase()}.`);
  }

  /**
   * Follow the output link, fetching a fresh presigned URL first when the one held is missing or about to expire
   * (links on a page left open would otherwise fail with S3's "Request has expired").
   */
  async download(event, id) {
    if (!this.store.has(id)) return;
    const held = this.store.outputUrl(id);
    const fresh = held && Date.now() < held.fetchedAt + urlLifetimeMs(held.url, held.fetchedAt) - DOWNLOAD_URL_MARGIN_MS;
    if (fresh) return; // let the browser follow the link
    event.preventDefault();
    const link = event.currentTarget;
    link.setAttribute("aria-busy", "true");
    try {
      const job = await this.fetchJob(id);
      if (job.output_url) window.location.assign(job.output_url);
      else this.announce("The output is not available for download.");
    } catch (error) {
      // A job the server no longer has left the list already (and was announced).
      if (error.code !== JOB_NOT_FOUND) this.announce(`The download link could not be fetched: ${error.message}`);
    } finally {
      link.removeAttribute("aria-busy");
    }
  }
}
