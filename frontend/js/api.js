/**
 * The filepipe HTTP API and the presigned S3 upload.
 *
 * Every API error is `{"error": {"code", "message"}}` with a 4xx status; `ApiError` carries the server's own message
 * so the form can show it as is. Network failures and unexpected answers become ApiErrors too, with a sentence a
 * person can act on.
 */

export class ApiError extends Error {
  /**
   * @param {string} message a sentence for the user
   * @param {{status?: number, code?: string}} [details]
   */
  constructor(message, { status = 0, code = "network_error" } = {}) {
    super(message);
    this.name = "ApiError";
    this.status = status;
    this.code = code;
  }
}

const NETWORK_MESSAGE = "The server could not be reached. Check your connection and try again.";

/** Read an error body of the contract, or describe the status when the body is not one. */
async function errorFrom(response) {
  let body = null;
  try {
    body = await response.json();
  } catch {
    // Not JSON: a proxy or the platform answered, not our handlers.
  }
  const error = body && typeof body === "object" ? body.error : null;
  if (error && typeof error.message === "string") {
    return new ApiError(error.message, { status: response.status, code: String(error.code || "error") });
  }
  const what = response.status >= 500 ? "The server had a problem" : "The server refused the request";
  return new ApiError(`${what} (HTTP ${response.status}). Try again in a moment.`, {
    status: response.status,
    code: `http_${response.status}`,
  });
}

/** The refusal for a job the caller does not have (any more): deleted, or never theirs. */
export const JOB_NOT_FOUND = "job_not_found";

/** What the API's JWT authorizer answers when the token is missing, expired or not accepted. */
const UNAUTHORIZED = 401;
/** A success with no body (`DELETE /api/jobs/<id>`). */
const NO_CONTENT = 204;
const SESSION_ENDED = "Your session has ended. Sign in again.";
const AUTH_UNREACHABLE = "The sign-in service could not be reached to renew your session. Try again in a moment.";

export class Api {
  /**
   * @param {string} base e.g. "/api" (relative, so the same files work behind CloudFront and locally)
   * @param {{accessToken: string | null, refresh: () => Promise<void>, expire: () => void}} auth the session:
   *   its access token goes with every request; on a 401 it is refreshed once, and if that fails it expires
   */
  constructor(base, auth) {
    this.base = base.replace(/\/+$/, "");
    this.auth = auth;
  }

  async request(method, path, body) {
    let response = await this.send(method, path, body);
    if (response.status === UNAUTHORIZED) {
      try {
        await this.auth.refresh();
        response = await this.send(method, path, body);
      } catch (error) {
        if (error instanceof ApiError) throw error; // the retry could not be sent
        if (error.type === "NetworkError") throw new ApiError(AUTH_UNREACHABLE); // not signed out for that
      }
      if (response.status === UNAUTHORIZED) {
        this.auth.expire();
        throw new ApiError(SESSION_ENDED, { status: UNAUTHORIZED, code: "unauthorized" });
      }
    }
    if (!response.ok) {
      throw await errorFrom(response);
    }
    if (response.status === NO_CONTENT) return null;
    try {
      return await response.json();
    } catch {
      throw new ApiError("The server sent an answer this page cannot read. Reload the page and try again.", {
        status: response.status,
        code: "bad_response",
      });
    }
  }

  async send(method, path, body) {
    const init = { method, headers: { accept: "application/json" }, cache: "no-store" };
    const token = this.auth.accessToken;
    if (token) init.headers.authorization = `Bearer ${token}`;
    if (body !== undefined) {
      init.headers["content-type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    try {
      return await fetch(`${this.base}${path}`, init);
    } catch {
      throw new ApiError(NETWORK_MESSAGE);
    }
  }

  /** `POST /api/uploads` → `{key, url, fields, expires_in, max_bytes}` */
  createUpload({ filename, size, contentType }) {
    return this.request("POST", "/uploads", { filename, size, content_type: contentType });
  }

  /** `POST /api/jobs` → the new job */
  createJob({ text, key }) {
    return this.request("POST", "/jobs", { input_text: text, key });
  }

  /** `GET /api/jobs` → the newest jobs, newest first; `more` when older ones did not fit in the answer */
  async listJobs() {
    const body = await this.request("GET", "/jobs");
    return { jobs: Array.isArray(body.jobs) ? body.jobs : [], more: Boolean(body.next) };
  }

  /** `GET /api/jobs/<id>` → the job, with `output_url` once SUCCEEDED */
  getJob(id) {
    return this.request("GET", `/jobs/${encodeURIComponent(id)}`);
  }

  /** `POST /api/jobs/<id>/cancel` → the job, now CANCELLED (the same answer again when it already was) */
  cancelJob(id) {
    return this.request("POST", `/jobs/${encodeURIComponent(id)}/cancel`);
  }

  /** `POST /api/jobs/<id>/retry` → the new job made from a FAILED or CANCELLED one (the same one when asked twice) */
  retryJob(id) {
    return this.request("POST", `/jobs/${encodeURIComponent(id)}/retry`);
  }

  /** `DELETE /api/jobs/<id>` → null; the finished job is gone with its input, output and log */
  deleteJob(id) {
    return this.request("DELETE", `/jobs/${encodeURIComponent(id)}`);
  }
}

/** Pull S3's own `<Message>` out of an XML error body, if there is one. */
function s3Message(xml) {
  const match = /<Message>([^<]*)<\/Message>/.exec(xml || "");
  return match ? match[1] : "";
}

/**
 * POST the file to S3 with a presigned form: every entry of `fields` first, the file last as `file`.
 *
 * XMLHttpRequest rather than fetch, because only XHR reports upload progress.
 *
 * @param {{url: string, fields: Record<string, string>}} upload the answer of `createUpload`
 * @param {File} file
 * @param {{onProgress?: (loaded: number, total: number) => void, signal?: AbortSignal}} [options]
 * @returns {Promise<void>}
 */
export function uploadFile(upload, file, { onProgress, signal } = {}) {
  return new Promise((resolve, reject) => {
    const form = new FormData();
    for (const [name, value] of Object.entries(upload.fields || {})) {
      form.append(name, value);
    }
    form.append("file", file);

    const xhr = new XMLHttpRequest();
    xhr.open("POST", upload.url);
    // Progress counts the whole multipart body (fields and boundaries too); report it in bytes of the file.
    xhr.upload.addEventListener("progress", (event) => {
      if (!onProgress || !event.lengthComputable || !event.total) return;
      onProgress(Math.min(file.size, Math.round((event.loaded / event.total) * file.size)), file.size);
    });
    xhr.addEventListener("load", () => {
      if (xhr.status >= 200 && xhr.status < 300) {
        if (onProgress) onProgress(file.size, file.size);
        resolve();
        return;
      }
      const detail = s3Message(xhr.responseText);
      const message = xhr.status === 403 && /expired/i.test(detail)
        ? "The upload link expired. Submit again to get a new one."
        : `Storage refused the file (HTTP ${xhr.status})${detail ? `: ${detail}` : "."}`;
      reject(new ApiError(message, { status: xhr.status, code: "upload_rejected" }));
    });
    xhr.addEventListener("error", () => reject(new ApiError(
      "The file could not be sent to storage. Check your connection and try again.",
    )));
    xhr.addEventListener("timeout", () => reject(new ApiError("The upload timed out. Try again.")));
    xhr.addEventListener("abort", () => reject(new ApiError("The upload was cancelled.", { code: "aborted" })));
    if (signal) {
      if (signal.aborted) {
        reject(new ApiError("The upload was cancelled.", { code: "aborted" }));
        return;
      }
      signal.addEventListener("abort", () => xhr.abort(), { once: true });
    }
    xhr.send(form);
  });
}
