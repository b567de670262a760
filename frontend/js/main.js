/** Entry point: read the site's config.json, restore the session, then show the sign-in view or the form and jobs. */

import { Api } from "./api.js";
import { createAnnouncer } from "./announce.js";
import { AuthView, PASSWORD_RULE } from "./authview.js";
import { CognitoClient, authMessage } from "./cognito.js";
import { JobActions } from "./jobactions.js";
import { JobList } from "./joblist.js";
import { EXPIRED, Session } from "./session.js";
import { SubmitForm } from "./submit.js";

/** Used when config.json cannot be read; the API still enforces its own limits and says so. */
const DEFAULTS = { apiBase: "/api", maxFileBytes: 10 * 1024 * 1024, maxTextLength: 2000, retentionDays: 0 };

const SIGNED_OUT_MESSAGES = {
  [EXPIRED]: "Your session has ended. Sign in again.",
};

function authConfig(auth) {
  const ok = auth && typeof auth === "object" && typeof auth.clientId === "string" && typeof auth.region === "string";
  if (!ok) return null;
  const endpoint = typeof auth.endpoint === "string" && auth.endpoint ? auth.endpoint : undefined;
  return { region: auth.region, clientId: auth.clientId, userPoolId: auth.userPoolId, endpoint };
}

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
      selfSignUp: config.selfSignUp !== false,
      auth: authConfig(config.auth),
    };
  } catch (error) {
    console.warn("config.json unavailable, using defaults:", error);
    return { ...DEFAULTS, selfSignUp: false, auth: null };
  }
}

/** Which of the two views shows, the header's account line, and where the skip link leads. */
class Shell {
  constructor({ session, auth, jobs, actions, form }) {
    this.session = session;
    this.auth = auth;
    this.jobs = jobs;
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
    this.jobs.load();
  }

  showSignIn({ message = "", tone = "error", focus = false } = {}) {
    this.app.hidden = true;
    this.account.hidden = true;
    this.email.textContent = "";
    this.actions.clear();
    this.jobs.clear();
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
  showRetention(config.retentionDays);
  const announce = createAnnouncer(document.getElementById("announcer"));
  if (!config.auth) {
    document.getElementById("auth-view").hidden = false;
    document.getElementById("auth-message").textContent =
      "This site's sign-in settings could not be read. Reload the page in a moment.";
    document.documentElement.dataset.ready = "true";
    return;
  }
  const cognito = new CognitoClient(config.auth);
  const session = new Session(cognito);
  const api = new Api(config.apiBase, session);
  const jobs = new JobList({ api, announce });
  const actions = new JobActions({ api, announce, jobs });
  const form = new SubmitForm({
    api,
    limits: { maxFileBytes: config.maxFileBytes, maxTextLength: config.maxTextLength },
    announce,
    onJobCreated: (job) => jobs.add(job),
  });
  const auth = new AuthView({ session, cognito, selfSignUp: config.selfSignUp });
  const shell = new Shell({ session, auth, jobs, actions, form });
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
