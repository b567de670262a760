/**
 * The job states, as the server's job model describes them in config.json's `jobStates` (handlers/jobmodel.py
 * `public_states`): what each is called and what a user may do with a job in it. The page keeps no list of its own:
 * these stay empty until main.js hands the site's config to `useJobStates`, before any job is shown.
 */

/** Jobs in these states never change again (they are no longer polled), in the model's order. */
export const FINAL_STATES = new Set();

/** `POST /api/jobs/<id>/cancel` stops a job in these states. */
export const CANCELLABLE_STATES = new Set();

/** `POST /api/jobs/<id>/retry` makes a new job from one in these states. */
export const RETRYABLE_STATES = new Set();

/** What the list shows for each state: a label for the badge, and a sentence for a job still under way. */
export const STATUS = {};

function isState(state) {
  return state && typeof state === "object" && typeof state.name === "string" && state.name
    && typeof state.label === "string" && typeof state.detail === "string"
    && ["final", "cancellable", "retryable"].every((flag) => typeof state[flag] === "boolean");
}

/** config.json's `jobStates` when every entry is well formed, else null (the config cannot be used). */
export function readJobStates(states) {
  return Array.isArray(states) && states.length > 0 && states.every(isState) ? states : null;
}

/** Take the states the server described (`readJobStates`'s answer) as the page's, replacing any earlier ones. */
export function useJobStates(states) {
  for (const set of [FINAL_STATES, CANCELLABLE_STATES, RETRYABLE_STATES]) set.clear();
  for (const name of Object.keys(STATUS)) delete STATUS[name];
  for (const state of states) {
    STATUS[state.name] = { label: state.label, detail: state.detail };
    if (state.final) FINAL_STATES.add(state.name);
    if (state.cancellable) CANCELLABLE_STATES.add(state.name);
    if (state.retryable) RETRYABLE_STATES.add(state.name);
  }
}

export function statusInfo(status) {
  return STATUS[status] || { label: status || "Unknown", detail: "" };
}

/** "2 in progress, 1 succeeded": how many jobs are under way, then how many ended in each final state. */
export function summarize(jobs) {
  const active = jobs.filter((job) => !FINAL_STATES.has(job.status)).length;
  const parts = [];
  if (active) parts.push(`${active} in progress`);
  for (const status of FINAL_STATES) {
    const count = jobs.filter((job) => job.status === status).length;
    if (count) parts.push(`${count} ${statusInfo(status).label.toLowerCase()}`);
  }
  return parts.length ? parts.join(", ") : "no jobs";
}
