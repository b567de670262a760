/** Entry point: read the site's config.json, then wire the form and the job list. */

import { Api } from "./api.js";
import { createAnnouncer } from "./announce.js";
import { JobList } from "./joblist.js";
import { SubmitForm } from "./submit.js";

/** Used when config.json cannot be read; the API still enforces its own limits and says so. */
const DEFAULTS = { apiBase: "/api", maxFileBytes: 10 * 1024 * 1024, maxTextLength: 2000, retentionDays: 0 };

async function loadConfig() {
  try {
    const response = await fetch("config.json", { cache: "no-store" });
    if (!response.ok) throw new Error(`HTTP ${response.status}`);
    const config = await response.json();
    return {
      apiBase: typeof config.apiBase === "string" && config.apiBase ? config.apiBase : DEFAULTS.apiBase,
      maxFileBytes: Number(config.maxFileBytes) > 0 ? Number(config.maxFileBytes) : DEFAULTS.maxFileBytes,
      maxTextLength: Number(config.maxTextLength) > 0 ? Number(config.maxTextLength) : DEFAULTS.maxTextLength,
      retentionDays: Number.isInteger(config.retentionDays) && config.retentionDays > 0 ? config.retentionDays : 0,
    };
  } catch (error) {
    console.warn("config.json unavailable, using defaults:", error);
    return { ...DEFAULTS };
  }
}

/** How long the stack keeps uploads and results (its `retentionDays`), next to the file field. */
function showRetention(days) {
  const note = document.getElementById("retention");
  if (days > 0) {
    note.textContent = `Files and results are deleted ${days} ${days === 1 ? "day" : "days"} after upload.`;
  }
}

async function start() {
  const config = await loadConfig();
  showRetention(config.retentionDays);
  const api = new Api(config.apiBase);
  const announce = createAnnouncer(document.getElementById("announcer"));
  const jobs = new JobList({ api, announce });
  new SubmitForm({
    api,
    limits: { maxFileBytes: config.maxFileBytes, maxTextLength: config.maxTextLength },
    announce,
    onJobCreated: (job) => jobs.add(job),
  });
  document.documentElement.dataset.ready = "true";
  await jobs.load();
}

start();
