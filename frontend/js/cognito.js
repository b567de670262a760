/**
 * Cognito user pools' own JSON API, called with fetch: one POST per action to the pool's regional endpoint (or the
 * emulator's, from config.json), `X-Amz-Target: AWSCognitoIdentityProviderService.<Action>`. These actions are public
 * (no AWS signature): the app client id says which pool, and the client has no secret.
 *
 * Errors come back as `{"__type": "NotAuthorizedException", "message": ...}`; `CognitoError.type` is that name (a
 * namespace before `#` dropped), and `authMessage` turns it into a sentence for the page.
 */

const TARGET_PREFIX = "AWSCognitoIdentityProviderService.";

export class CognitoError extends Error {
  /**
   * @param {string} type Cognito's exception name, or "NetworkError" / "BadResponse"
   * @param {string} message Cognito's own message (for the developer; the page shows `authMessage`)
   */
  constructor(type, message) {
    super(message || type);
    this.name = "CognitoError";
    this.type = type;
  }
}

/** `https://cognito-idp.<region>.amazonaws.com/`, unless config.json names another endpoint (the emulator). */
export function cognitoEndpoint({ region, endpoint }) {
  const base = endpoint || `https://cognito-idp.${region}.amazonaws.com`;
  return base.endsWith("/") ? base : `${base}/`;
}

/** The exception name from an error body or the `x-amzn-ErrorType` header (`Name:http://...` or `ns#Name`). */
function errorType(body, header) {
  const raw = (body && (body.__type || body.code)) || header || "UnknownError";
  return String(raw).split(":")[0].split("#").pop();
}

export class CognitoClient {
  /** @param {{region: string, clientId: string, endpoint?: string}} auth the `auth` object of config.json */
  constructor(auth) {
    this.url = cognitoEndpoint(auth);
    this.clientId = auth.clientId;
  }

  /**
   * Call one action; resolves to the answer's JSON, rejects with a CognitoError.
   * @param {string} action e.g. "InitiateAuth"
   * @param {object} body the request, as Cognito's API reference spells it
   */
  async call(action, body) {
    let response;
    try {
      response = await fetch(this.url, {
        method: "POST",
        headers: {
          "Content-Type": "application/x-amz-json-1.1",
          "X-Amz-Target": `${TARGET_PREFIX}${action}`,
        },
        body: JSON.stringify(body),
        cache: "no-store",
        credentials: "omit",
        referrerPolicy: "no-referrer",
      });
    } catch {
      throw new CognitoError("NetworkError", "fetch failed");
    }
    let answer = null;
    try {
      const text = await response.text();
      answer = text ? JSON.parse(text) : {};
    } catch {
      answer = null;
    }
    if (!response.ok) {
      throw new CognitoError(errorType(answer, response.headers.get("x-amzn-ErrorType")), answer && answer.message);
    }
    if (answer === null) throw new CognitoError("BadResponse", `unreadable ${action} answer`);
    return answer;
  }

  /** `InitiateAuth` with `USER_PASSWORD_AUTH` → `{AuthenticationResult}` or a challenge `{ChallengeName, Session}`. */
  signIn(email, password) {
    return this.call("InitiateAuth", {
      ClientId: this.clientId,
      AuthFlow: "USER_PASSWORD_AUTH",
      AuthParameters: { USERNAME: email, PASSWORD: password },
    });
  }

  /** `InitiateAuth` with `REFRESH_TOKEN_AUTH` → `{AuthenticationResult}` without a new refresh token. */
  refresh(refreshToken) {
    return this.call("InitiateAuth", {
      ClientId: this.clientId,
      AuthFlow: "REFRESH_TOKEN_AUTH",
      AuthParameters: { REFRESH_TOKEN: refreshToken },
    });
  }

  /** `RespondToAuthChallenge` `NEW_PASSWORD_REQUIRED`: a user an operator created sets a password of their own. */
  setNewPassword(email, password, session) {
    return this.call("RespondToAuthChallenge", {
      ClientId: this.clientId,
      ChallengeName: "NEW_PASSWORD_REQUIRED",
      Session: session,
      ChallengeResponses: { USERNAME: email, NEW_PASSWORD: password },
    });
  }

  /** `SignUp` with the email as the user name (the pool signs in by email) → `{UserConfirmed, UserSub}`. */
  signUp(email, password) {
    return this.call("SignUp", {
      ClientId: this.clientId,
      Username: email,
      Password: password,
      UserAttributes: [{ Name: "email", Value: email }],
    });
  }

  confirmSignUp(email, code) {
    return this.call("ConfirmSignUp", { ClientId: this.clientId, Username: email, ConfirmationCode: code });
  }

  forgotPassword(email) {
    return this.call("ForgotPassword", { ClientId: this.clientId, Username: email });
  }

  confirmForgotPassword(email, code, password) {
    return this.call("ConfirmForgotPassword", {
      ClientId: this.clientId, Username: email, ConfirmationCode: code, Password: password,
    });
  }

  /**
   * `GlobalSignOut`: Cognito stops accepting the user's refresh tokens (on every device) and marks the access tokens
   * revoked for its own APIs. An API behind a JWT authorizer still accepts an access token until it expires.
   */
  globalSignOut(accessToken) {
    return this.call("GlobalSignOut", { AccessToken: accessToken });
  }
}

/**
 * What went wrong, for a person. Sign-in, password reset and confirmation answer alike whether or not an email has
 * an account (the app client's PreventUserExistenceErrors); sign-up does tell, as Cognito answers
 * UsernameExistsException to an email that has one, by design.
 */
const MESSAGES = {
  NetworkError: "The sign-in service could not be reached. Check your connection and try again.",
  BadResponse: "The sign-in service sent an answer this page cannot read. Try again in a moment.",
  UserNotFoundException: "The email or the password is wrong.",
  UsernameExistsException: "An account with this email already exists. Sign in, or reset its password.",
  AliasExistsException: "An account with this email already exists. Sign in, or reset its password.",
  UserNotConfirmedException: "This email is not confirmed yet: enter the code from the email we sent.",
  CodeMismatchException: "That code is not the one we sent. Check the latest email and type it again.",
  ExpiredCodeException: "That code has expired or was already used. Ask for a new one.",
  PasswordResetRequiredException: "This account needs a new password: choose “Forgot your password?”.",
  TooManyRequestsException: "Too many attempts in a short time. Wait a few minutes, then try again.",
  TooManyFailedAttemptsException: "Too many failed attempts. Wait a few minutes, then try again.",
  LimitExceededException: "Too many attempts in a short time. Wait a few minutes, then try again.",
  CodeDeliveryFailureException: "The email with the code could not be sent. Check the address and try again.",
};

/**
 * A sentence for the page's live region.
 * @param {CognitoError} error
 * @param {{passwordRule: string}} context `passwordRule` is the pool's password policy in words
 */
export function authMessage(error, { passwordRule }) {
  const type = error instanceof CognitoError ? error.type : "UnknownError";
  if (type === "NotAuthorizedException") {
    if (/attempts exceeded/i.test(error.message)) return MESSAGES.TooManyFailedAttemptsException;
    if (/disabled/i.test(error.message)) return "This account is disabled. Ask the site's operator.";
    if (/sign ?up is not permitted/i.test(error.message)) return "New accounts are created by the site's operator.";
    return MESSAGES.UserNotFoundException;
  }
  if (type === "InvalidPasswordException") return `This password is not accepted: ${passwordRule}`;
  if (type === "InvalidParameterException") {
    return /email|username/i.test(error.message)
      ? "Check the email address: it should look like name@example.com."
      : "Check the fields and try again.";
  }
  if (type === "UserLambdaValidationException" && /^PreSignUp failed with error /.test(error.message)) {
    // The stack's pre sign-up trigger refused the address (allowedEmailDomains); its own words say why.
    return error.message.replace(/^PreSignUp failed with error /, "");
  }
  return MESSAGES[type] || "Something went wrong while signing in. Try again in a moment.";
}
