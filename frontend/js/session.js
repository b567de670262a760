/**
 * The signed-in user's tokens.
 *
 * The access and ID tokens live in this object only (memory: gone with the page). The refresh token is kept in
 * localStorage, so a reload gets fresh tokens with `REFRESH_TOKEN_AUTH` instead of asking for the password again.
 * No token is ever put in a URL or written to the console.
 */

import { CognitoError } from "./cognito.js";

const STORAGE_PREFIX = "filepipe.refreshToken.";

/** Why the user is signed out, for the sign-in view to say. */
export const SIGNED_OUT = "signed-out";
export const EXPIRED = "expired";

/** The claims of a JWT, read without checking its signature: for display only (the API checks tokens itself). */
export function jwtClaims(token) {
  try {
    const part = String(token).split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
    const binary = atob(part.padEnd(part.length + ((4 - (part.length % 4)) % 4), "="));
    const bytes = Uint8Array.from(binary, (char) => char.charCodeAt(0));
    const claims = JSON.parse(new TextDecoder().decode(bytes));
    return claims && typeof claims === "object" ? claims : {};
  } catch {
    return {};
  }
}

function readStorage(storage, key) {
  try {
    return storage.getItem(key);
  } catch {
    return null; // storage disabled: the session lasts as long as the page
  }
}

function writeStorage(storage, key, value) {
  try {
    if (value) storage.setItem(key, value);
    else storage.removeItem(key);
  } catch {
    // Storage disabled or full: the session still works until the page is closed.
  }
}

export class Session {
  /**
   * @param {import("./cognito.js").CognitoClient} cognito
   * @param {{storage?: Storage}} [options]
   */
  constructor(cognito, { storage = window.localStorage } = {}) {
    this.cognito = cognito;
    this.storage = storage;
    this.storageKey = `${STORAGE_PREFIX}${cognito.clientId}`;
    /** @type {{access: string, id: string, refresh: string} | null} */
    this.tokens = null;
    this.refreshing = null;
    this.listeners = [];
  }

  get signedIn() {
    return this.tokens !== null;
  }

  /** The `email` claim of the ID token. */
  get email() {
    return this.tokens ? String(jwtClaims(this.tokens.id).email || "") : "";
  }

  /** For the API's `Authorization` header. */
  get accessToken() {
    return this.tokens ? this.tokens.access : null;
  }

  /** `listener(signedIn, reason)` on every sign-in and sign-out; `reason` is SIGNED_OUT or EXPIRED. */
  onChange(listener) {
    this.listeners.push(listener);
  }

  /**
   * Sign in with the password. Resolves null when signed in, or `{challenge, session}` when Cognito asks for more
   * (`NEW_PASSWORD_REQUIRED`: a user an operator created with a temporary password).
   */
  async signIn(email, password) {
    return this.accept(await this.cognito.signIn(email, password));
  }

  /** Answer `NEW_PASSWORD_REQUIRED` with the user's own password; resolves like `signIn`. */
  async setNewPassword(email, password, session) {
    return this.accept(await this.cognito.setNewPassword(email, password, session));
  }

  accept(answer) {
    if (answer.AuthenticationResult) {
      this.keep(answer.AuthenticationResult);
      return null;
    }
    if (answer.ChallengeName === "NEW_PASSWORD_REQUIRED") {
      return { challenge: answer.ChallengeName, session: answer.Session };
    }
    throw new CognitoError("UnsupportedChallenge", `Cognito asked for ${answer.ChallengeName || "something else"}`);
  }

  /** Hold the new tokens; a refresh answer has no refresh token, so the one used is kept. */
  keep(result, usedRefreshToken = null) {
    const refresh = result.RefreshToken || usedRefreshToken;
    if (!result.AccessToken || !result.IdToken || !refresh) {
      throw new CognitoError("BadResponse", "tokens missing from the answer");
    }
    const wasSignedIn = this.signedIn;
    this.tokens = { access: result.AccessToken, id: result.IdToken, refresh };
    writeStorage(this.storage, this.storageKey, refresh);
    if (!wasSignedIn) this.emit(true, null);
  }

  /**
   * On page load: trade a stored refresh token for tokens. Resolves true when signed in, false when nothing was
   * stored; rejects with the CognitoError otherwise (a refused token is forgotten, a network failure keeps it).
   */
  async restore() {
    const stored = readStorage(this.storage, this.storageKey);
    if (!stored) return false;
    try {
      const answer = await this.cognito.refresh(stored);
      this.keep(answer.AuthenticationResult || {}, stored);
      return true;
    } catch (error) {
      if (error.type !== "NetworkError") writeStorage(this.storage, this.storageKey, null);
      throw error;
    }
  }

  /** New access and ID tokens from the refresh token; concurrent callers share one request. */
  refresh() {
    if (!this.refreshing) {
      const used = this.tokens ? this.tokens.refresh : null;
      this.refreshing = (async () => {
        if (!used) throw new CognitoError("NotAuthorizedException", "not signed in");
        const answer = await this.cognito.refresh(used);
        this.keep(answer.AuthenticationResult || {}, used);
      })().finally(() => {
        this.refreshing = null;
      });
    }
    return this.refreshing;
  }

  /** The API refused even fresh tokens (or they could not be had): back to the sign-in view. */
  expire() {
    this.forget(EXPIRED);
  }

  /**
   * Sign out: `GlobalSignOut` makes Cognito refuse this user's refresh tokens, then the tokens are forgotten here
   * whatever Cognito answered. Resolves true when Cognito confirmed.
   */
  async signOut() {
    let confirmed = false;
    try {
      await this.cognito.globalSignOut(this.accessToken);
      confirmed = true;
    } catch (error) {
      if (error.type === "NotAuthorizedException") confirmed = await this.signOutAfterRefresh();
    }
    this.forget(SIGNED_OUT);
    return confirmed;
  }

  /** The access token had expired: get a fresh one to sign out with. */
  async signOutAfterRefresh() {
    try {
      await this.refresh();
      await this.cognito.globalSignOut(this.accessToken);
      return true;
    } catch {
      return false;
    }
  }

  forget(reason) {
    const wasSignedIn = this.signedIn;
    this.tokens = null;
    writeStorage(this.storage, this.storageKey, null);
    if (wasSignedIn) this.emit(false, reason);
  }

  emit(signedIn, reason) {
    for (const listener of this.listeners) listener(signedIn, reason);
  }
}
