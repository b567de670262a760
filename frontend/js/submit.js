/**
 * The submit form: field checks, drag-and-drop, and the three steps of a submission
 * (ask for an upload → POST the file to storage with progress → create the job).
 *
 * A failed step is named in the message and the form keeps the text and the file, so Retry needs no retyping.
 * A file that reached storage is not sent again on retry while it is unchanged: only the failed step is repeated.
 */

import { ApiError, uploadFile } from "./api.js";
import { formatBytes } from "./format.js";
import { checkFile, checkText, codePointLength, contentTypeFor } from "./validate.js";

const STEPS = {
  prepare: { index: 1, doing: "Preparing the upload…", failed: "preparing the upload" },
  upload: { index: 2, doing: "Uploading the file…", failed: "uploading the file" },
  create: { index: 3, doing: "Creating the job…", failed: "creating the job" },
};
const STEP_COUNT = 3;

/** Server error codes that are about a field, so the message also goes next to that field. */
const TEXT_CODES = new Set(["invalid_text", "text_too_long"]);
const FILE_CODES = new Set([
  "file_too_large", "empty_file", "invalid_filename", "invalid_size", "invalid_content_type",
]);
/** Codes after which the stored upload cannot be used for a job, so a retry uploads again. */
const STALE_UPLOAD_CODES = new Set(["upload_not_found", "key_in_use", "invalid_key", "file_too_large", "empty_file"]);

class StepError extends Error {
  constructor(step, cause) {
    super(cause.message);
    this.step = step;
    this.cause = cause;
  }
}

export class SubmitForm {
  /**
   * @param {{api: import("./api.js").Api, limits: {maxFileBytes: number, maxTextLength: number},
   *          announce: (message: string) => void, onJobCreated: (job: object) => void}} deps
   */
  constructor({ api, limits, announce, onJobCreated }) {
    this.api = api;
    this.limits = limits;
    this.announce = announce;
    this.onJobCreated = onJobCreated;
    this.busy = false;
    this.idleLabel = "Submit";
    this.showErrors = { text: false, file: false };
    /** @type {{file: File, key: string} | null} an upload that reached storage and has no job yet */
    this.stored = null;

    const $ = (id) => document.getElementById(id);
    this.form = $("job-form");
    this.text = $("input-text");
    this.counter = $("text-counter");
    this.fileInput = $("input-file");
    this.dropzone = $("dropzone");
    this.fileSummary = $("file-summary");
    this.button = $("submit-button");
    this.buttonLabel = $("submit-label");
    this.progress = $("progress");
    this.bar = $("upload-progress");
    this.progressText = $("progress-text");
    this.alert = $("submit-error");
    this.alertTitle = $("submit-error-title");
    this.alertMessage = $("submit-error-message");
    this.errors = { text: $("text-error"), file: $("file-error") };
    this.fields = { text: this.text, file: this.fileInput };

    $("max-file-size").textContent = formatBytes(limits.maxFileBytes);
    this.bindEvents();
    this.updateCounter();
    this.updateFileSummary();
  }

  get file() {
    return this.fileInput.files && this.fileInput.files.length ? this.fileInput.files[0] : null;
  }

  bindEvents() {
    this.form.addEventListener("submit", (event) => {
      event.preventDefault();
      this.submit();
    });
    this.text.addEventListener("input", () => {
      this.updateCounter();
      this.hideFinishedProgress();
      if (this.showErrors.text) this.validateField("text");
    });
    this.text.addEventListener("keydown", (event) => {
      if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) {
        event.preventDefault();
        this.form.requestSubmit();
      }
    });
    this.fileInput.addEventListener("change", () => this.fileChanged());

    const zone = this.dropzone;
    const hasFiles = (event) => [...(event.dataTransfer?.types || [])].includes("Files");
    zone.addEventListener("dragenter", (event) => {
      if (!hasFiles(event)) return;
      event.preventDefault();
      zone.classList.add("dropzone--over");
    });
    zone.addEventListener("dragover", (event) => {
      if (!hasFiles(event)) return;
      event.preventDefault();
      event.dataTransfer.dropEffect = this.busy ? "none" : "copy";
    });
    zone.addEventListener("dragleave", (event) => {
      if (!zone.contains(event.relatedTarget)) zone.classList.remove("dropzone--over");
    });
    zone.addEventListener("drop", (event) => {
      event.preventDefault();
      zone.classList.remove("dropzone--over");
      if (this.busy) return;
      const files = event.dataTransfer?.files;
      if (!files || files.length === 0) return;
      if (files.length > 1) {
        this.showErrors.file = true;
        this.setFieldError("file", "Drop one file: each job takes exactly one file.");
        return;
      }
      this.fileInput.files = files;
      this.fileChanged();
    });
    // A file dropped next to the zone would otherwise replace the page (and the typed text) with the file.
    for (const type of ["dragover", "drop"]) {
      window.addEventListener(type, (event) => {
        if (!zone.contains(event.target)) event.preventDefault();
      });
    }
  }

  fileChanged() {
    this.updateFileSummary();
    this.hideFinishedProgress();
    this.showErrors.file = true;
    this.validateField("file");
    if (this.stored && this.stored.file !== this.file) this.stored = null;
  }

  /** The summary of the last successful submission goes away once the user starts the next one. */
  hideFinishedProgress() {
    if (!this.busy && this.progress.dataset.state === "done") this.progress.hidden = true;
  }

  updateCounter() {
    const length = codePointLength(this.text.value.trim());
    this.counter.textContent = `${length} / ${this.limits.maxTextLength}`;
    this.counter.classList.toggle("field__counter--over", length > this.limits.maxTextLength);
  }

  updateFileSummary() {
    const file = this.file;
    this.dropzone.classList.toggle("dropzone--has-file", Boolean(file));
    this.fileSummary.textContent = file ? `${file.name} · ${formatBytes(file.size)}` : "No file chosen";
  }

  /** Check one field, show or clear its message; returns true when it is valid. */
  validateField(name) {
    const message = name === "text"
      ? checkText(this.text.value, this.limits.maxTextLength)
      : checkFile(this.file, this.limits.maxFileBytes);
    this.setFieldError(name, message);
    return !message;
  }

  setFieldError(name, message) {
    const el = this.errors[name];
    el.textContent = message || "";
    el.hidden = !message;
    if (message) this.fields[name].setAttribute("aria-invalid", "true");
    else this.fields[name].removeAttribute("aria-invalid");
    this.fields[name].closest(".field").classList.toggle("field--invalid", Boolean(message));
  }

  async submit() {
    if (this.busy) return;
    this.showErrors = { text: true, file: true };
    const textOk = this.validateField("text");
    const fileOk = this.validateField("file");
    if (!textOk || !fileOk) {
      (textOk ? this.fields.file : this.fields.text).focus();
      this.announce("Check the highlighted fields.");
      return;
    }
    this.setBusy(true);
    this.hideAlert();
    let focusAfter;
    try {
      const job = await this.run(this.text.value.trim(), this.file);
      focusAfter = this.succeeded(job);
    } catch (error) {
      focusAfter = this.failed(error);
    } finally {
      this.setBusy(false);
    }
    focusAfter.focus(); // after setBusy(false): a disabled button cannot take focus
  }

  /** The three steps; a file already in storage (a retry after step 3 failed) is not uploaded again. */
  async run(text, file) {
    this.showProgress();
    let key;
    if (this.stored && this.stored.file === file) {
      key = this.stored.key;
      this.markStep("prepare", "done");
      this.markStep("upload", "done");
      this.setProgress(file.size, file.size, "Already uploaded.");
    } else {
      this.stored = null;
      const upload = await this.step("prepare", () => this.api.createUpload({
        filename: file.name, size: file.size, contentType: contentTypeFor(file),
      }));
      await this.step("upload", () => uploadFile(upload, file, {
        onProgress: (loaded, total) => this.setProgress(loaded, total),
      }));
      this.stored = { file, key: upload.key };
      key = upload.key;
    }
    const job = await this.step("create", () => this.api.createJob({ text, key }));
    this.stored = null;
    return job;
  }

  async step(name, action) {
    this.markStep(name, "active");
    this.progressText.textContent = STEPS[name].doing;
    if (name === "upload") this.announce(`Uploading ${this.file ? this.file.name : "the file"}.`);
    try {
      const result = await action();
      this.markStep(name, "done");
      return result;
    } catch (error) {
      this.markStep(name, "failed");
      throw new StepError(name, error instanceof ApiError ? error : new ApiError(String(error.message || error)));
    }
  }

  succeeded(job) {
    const size = this.file ? formatBytes(this.file.size) : "the file";
    this.progress.dataset.state = "done";
    this.progressText.textContent = `Uploaded ${size} (100%). Job created: follow it in the list.`;
    this.announce(`Job created for ${this.file ? this.file.name : "your file"}. Its status is shown in the job list.`);
    this.onJobCreated(job);
    this.resetFields();
    return this.text;
  }

  /** Empty fields, no field messages, the button back to Submit. */
  resetFields() {
    this.form.reset();
    this.showErrors = { text: false, file: false };
    this.setFieldError("text", null);
    this.setFieldError("file", null);
    this.updateCounter();
    this.updateFileSummary();
    this.idleLabel = "Submit";
  }

  /** Empty the form for the next user: fields, messages, progress, and any upload kept for a retry. */
  clear() {
    this.stored = null;
    this.resetFields();
    this.hideAlert();
    this.progress.hidden = true;
    if (!this.busy) this.buttonLabel.textContent = this.idleLabel;
  }

  failed(error) {
    const step = error instanceof StepError ? error.step : null;
    const cause = error instanceof StepError ? error.cause : error;
    if (cause.code && STALE_UPLOAD_CODES.has(cause.code)) this.stored = null;
    const where = step ? `Step ${STEPS[step].index} of ${STEP_COUNT} failed: ${STEPS[step].failed}.` : "Submitting failed.";
    this.alertTitle.textContent = where;
    this.alertMessage.textContent = cause.message;
    this.alert.hidden = false;
    this.progress.dataset.state = "failed";
    this.progressText.textContent = where;
    let field = null;
    if (TEXT_CODES.has(cause.code)) field = "text";
    else if (FILE_CODES.has(cause.code)) field = "file";
    if (field) {
      this.setFieldError(field, cause.message);
      this.idleLabel = "Submit";
      return this.fields[field];
    }
    this.idleLabel = "Retry";
    return this.button;
  }

  hideAlert() {
    this.alert.hidden = true;
    this.alertTitle.textContent = "";
    this.alertMessage.textContent = "";
  }

  setBusy(busy) {
    this.busy = busy;
    this.button.disabled = busy;
    this.button.classList.toggle("button--busy", busy);
    this.form.setAttribute("aria-busy", String(busy));
    this.text.readOnly = busy;
    this.fileInput.disabled = busy;
    this.dropzone.classList.toggle("dropzone--disabled", busy);
    this.buttonLabel.textContent = busy ? "Submitting…" : this.idleLabel;
  }

  showProgress() {
    this.progress.hidden = false;
    this.progress.dataset.state = "running";
    for (const li of this.progress.querySelectorAll(".step")) {
      li.dataset.state = "";
      li.removeAttribute("aria-current");
    }
    this.bar.value = 0;
    this.bar.removeAttribute("aria-valuetext");
  }

  markStep(name, state) {
    const li = this.progress.querySelector(`.step[data-step="${name}"]`);
    li.dataset.state = state;
    if (state === "active") li.setAttribute("aria-current", "step");
    else li.removeAttribute("aria-current");
  }

  setProgress(loaded, total, note) {
    const size = total || 1;
    const percent = Math.min(100, Math.floor((loaded / size) * 100));
    this.bar.value = percent;
    const text = note || `Uploading… ${formatBytes(loaded)} of ${formatBytes(total)} (${percent}%)`;
    this.bar.setAttribute("aria-valuetext", `${percent}%`);
    this.progressText.textContent = text;
  }
}
