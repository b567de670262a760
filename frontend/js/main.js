/** Entry point: read the site's config.json, restore the session, then show the sign-in view or the form and jobs. */

import { Api } from "./api.js";
import { createAnnouncer } from "./announce.js";
import { AuthView, PASSWORD_RULE } from "./authview.js";
import { CognitoClient, authMessage } from "./cognito.js";
import { JobActions } from "./jobactions.js";
import { JobListView } from "./joblist.js";
import { JobStore } from "./jobstore.js";
import { JobSync } from "./jobsync.js";
import { EXPIRED, Session } from "./session.js";
import { readJobStates, useJobStates } from "./states.js";
import { SubmitForm } from "./submit.js";

const SIGNED_OUT_MESSAGES = {
  [EXPIRED]: "Your session has ended. Sign in again.",
};

function authConfig(auth) {
  const ok = auth && typeof auth === "object" && typeof auth.clientId === "string" && typeof auth.region === "string";
  if (!ok) return null;
  const endpoint = typeof auth.endpoint === "string" && auth.endpoint ? auth.endpoint : undefined;
  return { region: auth.region, clientId: auth.clientId, userPoolId: auth.userPoolId, endpoint };
}

function positive(value) {
  return Number(value) > 0 ? Number(value) : null;
}

/**
 * The site's config.json: where the API and the sign-in service are, the limits the API enforces, and the job states;
 * null when it cannot be read or lacks any of them (the page copies none: the server is their one source).
 */
async function loadConfig() {
  try {
    const response = await fetch("config.json", { cache: "no-store" });
    if (!response.ok) throw new Error(`HTTP ${response.status}`);
    const config = await response.json();
    const loaded = {
      apiBase: typeof config.apiBase === "string" && config.apiBase ? config.apiBase : null,
      maxFileBytes: positive(config.maxFileBytes),
      maxTextLength: positive(config.maxTextLength),
      retentionDays: Number.isInteger(config.retentionDays) && config.retentionDays > 0 ? config.retentionDays : 0,
      selfSignUp: config.selfSignUp !== false,
      auth: authConfig(config.auth),
      jobStates: readJobStates(config.jobStates),
    };
    const missing = Object.keys(loaded).filter((key) => loaded[key] === null);
    if (missing.length) throw new Error(`missing or invalid: ${missing.join(", ")}`);
    return loaded;
  } catch (error) {
    console.warn("config.json unusable:", error);
    return null;
  }
}

/** Which of the two views shows, the header's account line, and where the skip link leads. */
class Shell {
  constructor({ session, auth, store, sync, actions, form }) {
    this.session = session;
    this.auth = auth;
    this.store = store;
    this.sync = sync;
    this.actions = actions;
    this.form = form;
    this.app = document.getElementById("app-view");
    this.account = document.getElementById("account");
    this.email = document.getElementById("account-email");
    this.skip = document.getElementById("skip-link");
    this.signOutButton = document.getElementById("sign-out-button");
    this.signOutButton.addEventListener("click", () => this.signOut());
  }

  /** Follow sign-ins and sign-outs from now on (after the session was restored, which moves no focus). */
  follow() {
    this.session.onChange((signedIn, reason) => {
      if (signedIn) this.showApp({ focus: true });
      else this.showSignIn({ message: SIGNED_OUT_MESSAGES[reason] || "", focus: true });
    });
  }

  showApp({ focus = false } = {}) {
    this.auth.hide();
    this.email.textContent = this.session.email;
    this.account.hidden = false;
    this.app.hidden = false;
    this.skip.href = "#jobs-heading";
    this.skip.textContent = "Skip to jobs";
    if (focus) document.getElementById("input-text").focus();
    this.sync.load();
  }

  showSignIn({ message = "", tone = "error", focus = false } = {}) {
    this.app.hidden = true;
    this.account.hidden = true;
    this.email.textContent = "";
    this.actions.clear();
    this.store.clear();
    this.form.clear();
    this.skip.href = "#auth-heading";
    this.skip.textContent = "Skip to sign-in";
    this.auth.show({ message, tone, focus });
  }

  async signOut() {
    this.signOutButton.disabled = true;
    const confirmed = await this.session.signOut();
    this.signOutButton.disabled = false;
    this.auth.say(confirmed
      ? "You are signed out."
      : "You are signed out on this page. The sign-in service could not be reached to end the session elsewhere.",
    confirmed ? "info" : "error");
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
  if (!config) {
    document.getElementById("auth-view").hidden = false;
    document.getElementById("auth-message").textContent =
      "This site's sign-in settings could not be read. Reload the page in a moment.";
    document.documentElement.dataset.ready = "true";
    return;
  }
  showRetention(config.retentionDays);
  useJobStates(config.jobStates);
  const announce = createAnnouncer(document.getElementById("announcer"));
  const cognito = new CognitoClient(config.auth);
  const session = new Session(cognito);
  const api = new Api(config.apiBase, session);
  const store = new JobStore();
  const sync = new JobSync({ api, store, announce });
  const list = new JobListView({
    store, announce, refresh: () => sync.load({ announceResult: true }), fetchJob: (id) => sync.fetch(id),
  });
  const actions = new JobActions({ api, announce, store, sync, list });
  const form = new SubmitForm({
    api,
    limits: { maxFileBytes: config.maxFileBytes, maxTextLength: config.maxTextLength },
    announce,
    onJobCreated: (job) => store.put(job, { highlight: true }),
  });
  const auth = new AuthView({ session, cognito, selfSignUp: config.selfSignUp });
  const shell = new Shell({ session, auth, store, sync, actions, form });
  let restored = false;
  let message = "";
  try {
    restored = await session.restore();
  } catch (error) {
    message = error.type === "NetworkError" ? authMessage(error, { passwordRule: PASSWORD_RULE })
      : SIGNED_OUT_MESSAGES[EXPIRED];
  }
  if (restored) shell.showApp();
  else shell.showSignIn({ message });
  shell.follow();
  document.documentElement.dataset.ready = "true";
}

start();
