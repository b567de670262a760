/**
 * The signed-out view: sign in, create an account (then the emailed code), reset a forgotten password, and set a
 * first password for an account an operator created. One panel (form) shows at a time; what Cognito answers becomes
 * a sentence in the view's alert region.
 */

import { CognitoError, authMessage } from "./cognito.js";

/** The user pool's password policy in words (stackspec/userpool.py's PASSWORD_POLICY; a browser test checks it). */
export const PASSWORD_RULE = "Use at least 12 characters, with an upper-case letter, a lower-case letter and a digit.";

const PANELS = {
  "sign-in": { title: "Sign in", intro: "Sign in to submit files and follow your jobs.", focus: "signin-email" },
  "sign-up": { title: "Create an account", intro: "We will email you a code to confirm the address.", focus: "signup-email" },
  confirm: { title: "Confirm your email", intro: "One more step before you can sign in.", focus: "confirm-code" },
  forgot: { title: "Reset your password", intro: "We will email you a code to set a new password.", focus: "forgot-email" },
  reset: { title: "Choose a new password", intro: "Enter the code we emailed you and a new password.", focus: "reset-code" },
  "new-password": {
    title: "Choose your password",
    intro: "Your account was created for you: replace the temporary password with one of your own.",
    focus: "new-password",
  },
};

/** Field names and what to say when they are empty. */
const REQUIRED = {
  email: "Type your email address.",
  password: "Type a password.",
  code: "Type the code from the email.",
};

export class AuthView {
  /**
   * @param {{session: import("./session.js").Session, cognito: import("./cognito.js").CognitoClient,
   *          selfSignUp: boolean}} deps
   */
  constructor({ session, cognito, selfSignUp }) {
    this.session = session;
    this.cognito = cognito;
    this.selfSignUp = selfSignUp;
    this.view = document.getElementById("auth-view");
    this.heading = document.getElementById("auth-heading");
    this.intro = document.getElementById("auth-intro");
    this.message = document.getElementById("auth-message");
    this.forms = Object.fromEntries(
      [...this.view.querySelectorAll("form[data-panel]")].map((form) => [form.dataset.panel, form]),
    );
    /** The email (and, until it is used, the password) of a sign-up or reset in progress; memory only. */
    this.pending = { email: "", password: "", session: "" };
    this.busy = false;

    for (const hint of this.view.querySelectorAll("[data-password-rule]")) hint.textContent = PASSWORD_RULE;
    document.getElementById("sign-up-link").hidden = !selfSignUp;
    for (const button of this.view.querySelectorAll("[data-go]")) {
      button.addEventListener("click", () => this.go(button.dataset.go));
    }
    for (const [panel, form] of Object.entries(this.forms)) {
      form.addEventListener("submit", (event) => {
        event.preventDefault();
        this.submit(panel, form);
      });
      form.addEventListener("input", (event) => event.target.removeAttribute("aria-invalid"));
    }
  }

  /** Show the view on `panel` with an optional message; `focus` moves the keyboard to its first field. */
  show({ panel = "sign-in", message = "", tone = "info", focus = false } = {}) {
    this.view.hidden = false;
    this.go(panel, { focus });
    this.say(message, tone);
  }

  hide() {
    this.view.hidden = true;
    this.pending = { email: "", password: "", session: "" };
    for (const form of Object.values(this.forms)) form.reset();
    this.say("");
  }

  go(panel, { focus = true } = {}) {
    if (panel === "sign-up" && !this.selfSignUp) panel = "sign-in";
    const info = PANELS[panel];
    for (const [name, form] of Object.entries(this.forms)) form.hidden = name !== panel;
    this.heading.textContent = info.title;
    this.intro.textContent = info.intro;
    const email = this.pending.email || this.field("sign-in", "email").value.trim();
    for (const name of ["sign-in", "sign-up", "forgot"]) {
      const input = this.field(name, "email");
      if (!input.value && email) input.value = email;
    }
    for (const span of this.forms[panel].querySelectorAll("[data-email]")) span.textContent = this.pending.email;
    this.say("");
    if (focus) document.getElementById(info.focus).focus();
  }

  say(message, tone = "error") {
    this.message.textContent = message || "";
    this.message.dataset.tone = tone;
  }

  field(panel, name) {
    return this.forms[panel].elements.namedItem(name);
  }

  /** The panel's values, or null (with the first empty field marked and focused) when one is missing. */
  values(panel) {
    const form = this.forms[panel];
    const values = {};
    for (const input of form.querySelectorAll("input")) {
      const value = input.type === "password" ? input.value : input.value.trim();
      if (!value) {
        input.setAttribute("aria-invalid", "true");
        input.focus();
        this.say(REQUIRED[input.name]);
        return null;
      }
      values[input.name] = value;
    }
    return values;
  }

  async submit(panel, form) {
    if (this.busy) return;
    const values = this.values(panel);
    if (!values) return;
    const button = form.querySelector("button[type=submit]");
    const label = button.textContent;
    this.busy = true;
    button.disabled = true;
    button.textContent = button.dataset.busyLabel;
    this.say("");
    try {
      await this[panel](values);
    } catch (error) {
      this.failed(panel, error);
    } finally {
      this.busy = false;
      button.disabled = false;
      button.textContent = label;
    }
  }

  failed(panel, error) {
    if (error.type === "UserNotConfirmedException" && panel === "sign-in") {
      this.go("confirm");
      this.say(authMessage(error, { passwordRule: PASSWORD_RULE }), "info");
      return;
    }
    this.say(authMessage(error, { passwordRule: PASSWORD_RULE }));
    const input = this.forms[panel].querySelector(
      error.type === "InvalidPasswordException" ? "input[type=password]" : "input",
    );
    if (input && !this.view.hidden && !this.forms[panel].hidden) input.focus();
  }

  /** Sign in; a `NEW_PASSWORD_REQUIRED` answer leads to the panel that sets one. */
  async signIn(email, password) {
    const next = await this.session.signIn(email, password);
    if (next) {
      // The challenge is answered with the email typed, not ChallengeParameters.USERNAME (the sub): moto would
      // store that sub as the user's email.
      this.pending = { email, password: "", session: next.session };
      this.go("new-password");
      this.say("Choose a password of your own to finish signing in.", "info");
    }
  }

  // What each panel's submit does, by panel name (see `submit`).

  async "sign-in"({ email, password }) {
    this.pending = { email, password, session: "" }; // kept in case Cognito asks to confirm the email first
    await this.signIn(email, password);
  }

  async "sign-up"({ email, password }) {
    const answer = await this.cognito.signUp(email, password);
    this.pending = { email, password, session: "" };
    if (answer.UserConfirmed) {
      await this.signIn(email, password);
      return;
    }
    this.go("confirm");
    this.say(`We sent a verification code to ${email}. Enter it below.`, "info");
  }

  async confirm({ code }) {
    const { email, password } = this.pending;
    await this.cognito.confirmSignUp(email, code);
    if (password) {
      await this.signIn(email, password);
      return;
    }
    this.go("sign-in");
    this.say("Your email is confirmed. Sign in with your password.", "info");
  }

  async forgot({ email }) {
    await this.cognito.forgotPassword(email);
    this.pending = { email, password: "", session: "" };
    this.go("reset");
    this.say(`If ${email} has an account, we sent it a code.`, "info");
  }

  async reset({ code, password }) {
    const { email } = this.pending;
    await this.cognito.confirmForgotPassword(email, code, password);
    await this.signIn(email, password);
  }

  async "new-password"({ password }) {
    const { email, session } = this.pending;
    if (await this.session.setNewPassword(email, password, session)) {
      throw new CognitoError("UnsupportedChallenge", "Cognito asked for another challenge");
    }
  }
}
