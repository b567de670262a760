/** The job states the API reports (handlers/jobmodel.py `Status`), and what a user may do with a job in each. */

/** Jobs in these states never change again (they are no longer polled). */
export const FINAL_STATES = new Set(["SUCCEEDED", "FAILED", "CANCELLED"]);

/** `POST /api/jobs/<id>/cancel` stops a job in these states. */
export const CANCELLABLE_STATES = new Set(["PENDING", "QUEUED", "LAUNCHING", "RUNNING"]);

/** `POST /api/jobs/<id>/retry` makes a new job from one in these states. */
export const RETRYABLE_STATES = new Set(["FAILED", "CANCELLED"]);

/** What the list shows for each state: a label for the badge, and a sentence for a job still under way. */
export const STATUS = {
  PENDING: { label: "Pending", detail: "Saved. A VM will be launched for it shortly." },
  QUEUED: { label: "Queued", detail: "Waiting for a free VM slot." },
  LAUNCHING: { label: "Launching", detail: "Starting a VM for this job." },
  RUNNING: { label: "Running", detail: "Processing on its VM." },
  SUCCEEDED: { label: "Succeeded", detail: "" },
  FAILED: { label: "Failed", detail: "" },
  CANCELLED: { label: "Cancelled", detail: "Stopped at your request." },
};

export function statusInfo(status) {
  return STATUS[status] || { label: status || "Unknown", detail: "" };
}
