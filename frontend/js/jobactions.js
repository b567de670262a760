/**
 * What a user can do with each job in the list: cancel one under way, retry a failed or cancelled one, delete a
 * finished one (after a confirmation). Each button asks the API and writes the answer to the job store (the list shows
 * it, and says what changed in the live region); an API refusal is shown under the job with the server's own sentence, except "no such job": the
 * job was deleted elsewhere, and leaves the list.
 */

import { JOB_NOT_FOUND } from "./api.js";
import { ConfirmDialog } from "./confirm.js";
import { jobName } from "./format.js";
import { CANCELLABLE_STATES, FINAL_STATES, RETRYABLE_STATES } from "./states.js";

const CONFLICT = 409;

/** Show the buttons that apply to the job's state, each named with the job, or where a retry of it went. */
export function renderActions(row, job, fileName) {
  const shown = {
    cancel: CANCELLABLE_STATES.has(job.status),
    retry: RETRYABLE_STATES.has(job.status) && !job.retried_as,
    delete: FINAL_STATES.has(job.status),
  };
  for (const button of row.querySelectorAll("[data-action]")) {
    button.hidden = !shown[button.dataset.action];
    button.setAttribute("aria-label", `${button.textContent.trim()} job ${fileName}`);
  }
  const retried = row.querySelector('[data-slot="retried"]');
  retried.hidden = !job.retried_as;
  if (job.retried_as) {
    retried.href = `#job-${job.retried_as}`;
    retried.textContent = `Retried as job ${String(job.retried_as).slice(0, 8)}`;
  }
}

/** The first control a keyboard user can reach in a row, if any. */
export function firstControl(row) {
  return [...row.querySelectorAll("a[href], button")]
    .find((control) => !control.disabled && control.getClientRects().length > 0);
}

export class JobActions {
  /**
   * @param {{api: import("./api.js").Api, announce: (message: string) => void,
   *          store: import("./jobstore.js").JobStore, sync: import("./jobsync.js").JobSync,
   *          list: import("./joblist.js").JobListView}} deps `list` finds a job's row
   */
  constructor({ api, announce, store, sync, list }) {
    this.api = api;
    this.announce = announce;
    this.store = store;
    this.sync = sync;
    this.list = list;
    this.heading = document.getElementById("jobs-heading");
    this.confirm = new ConfirmDialog(document.getElementById("delete-dialog"));
    document.getElementById("jobs").addEventListener("click", (event) => this.onClick(event));
  }

  /** The user was signed out: no question stays open over the sign-in view. */
  clear() {
    this.confirm.dismiss();
  }

  onClick(event) {
    const control = event.target.closest('[data-action], [data-slot="retried"]');
    const row = control?.closest(".job");
    if (!row) return;
    const id = row.dataset.jobId;
    if (control.dataset.slot === "retried") this.showRetry(event, row);
    else if (control.dataset.action === "cancel") this.cancel(id, row, control);
    else if (control.dataset.action === "retry") this.retry(id, row, control);
    else if (control.dataset.action === "delete") this.remove(id, row, control);
  }

  /** Follow a "Retried as" link to the new job's row when it is in the list. */
  showRetry(event, row) {
    const target = this.list.row(this.store.job(row.dataset.jobId)?.retried_as);
    if (!target) return; // not loaded here: the link changes the address and nothing else
    event.preventDefault();
    target.scrollIntoView({ block: "nearest" });
    target.focus();
  }

  cancel(id, row, button) {
    return this.send(id, row, button, () => this.api.cancelJob(id), (job) => {
      // Announces "<file>: cancelled." unless a poll already saw the change (and said so).
      this.store.put(job, { announce: true });
      this.focusIn(row, button);
    });
  }

  retry(id, row, button) {
    return this.send(id, row, button, () => this.api.retryJob(id), (created) => {
      const old = this.store.job(id);
      this.store.put(created, { highlight: true });
      this.store.put({ ...old, retried_as: created.id });
      this.announce(`${jobName(old)}: retried as a new job.`);
      this.focusIn(row, button);
    });
  }

  async remove(id, row, button) {
    const name = jobName(this.store.job(id));
    const confirmed = await this.confirm.ask({
      title: `Delete ${name}?`,
      text: "The job, its file, its output and its log are deleted for good.",
      confirmLabel: "Delete",
      returnTo: button,
      fallback: this.heading, // the row left while the question was open (deleted elsewhere)
    });
    if (!confirmed || this.list.row(id) !== row) return;
    const deleted = () => this.api.deleteJob(id).catch((error) => {
      // No such job: already gone, which is what the user asked for. Any other refusal (a 404 for a missing route
      // included) is shown under the job, which stays.
      if (error.code !== JOB_NOT_FOUND) throw error;
    });
    await this.send(id, row, button, deleted, () => this.dropRow(id));
  }

  /** Take the deleted job off the list (focus in its row, or lost while the button was disabled, moves on). */
  dropRow(id) {
    this.store.remove([id], { reason: "deleted", orphanedFocus: true });
  }

  /**
   * Run one request for a row with its buttons disabled (no second request while one is in flight), then apply
   * `done` to the answer, or show and announce the refusal.
   */
  async send(id, row, control, request, done) {
    const buttons = [...row.querySelectorAll("[data-action]")];
    for (const button of buttons) button.disabled = true;
    this.showError(row, "");
    let answer;
    let failure = null;
    try {
      answer = await request();
    } catch (error) {
      failure = error;
    }
    for (const button of buttons) button.disabled = false;
    if (this.list.row(id) !== row) return; // signed out, or the job left the list meanwhile
    if (failure) await this.refused(id, row, control, failure);
    else done(answer);
  }

  /**
   * Say why the API refused, under the job and in the live region, and show the job as the server now has it; a job
   * the server no longer has (deleted in another tab or on another device) leaves the list.
   */
  async refused(id, row, control, error) {
    if (error.code === JOB_NOT_FOUND) {
      this.store.remove([id], { reason: "elsewhere", orphanedFocus: true });
      return;
    }
    const name = jobName(this.store.job(id));
    this.showError(row, error.message);
    this.announce(`${name}: ${error.message}`);
    if (error.status === CONFLICT) {
      // The job is not in the state the row showed (it finished, or its VM is still going away).
      await this.sync.refresh([id]);
    }
    if (this.list.row(id) === row) this.focusIn(row, control);
  }

  showError(row, message) {
    const slot = row.querySelector('[data-slot="action-error"]');
    slot.textContent = message;
    slot.hidden = !message;
  }

  /** Keep focus on the control that was used, or on the row's first control once that one is hidden. */
  focusIn(row, control) {
    if (document.activeElement !== document.body && !row.contains(document.activeElement)) return;
    (control.getClientRects().length > 0 ? control : firstControl(row) || row).focus();
  }
}
