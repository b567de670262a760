/**
 * Client-side checks that mirror the API's (handlers/upload.py and handlers/jobs.py), so most mistakes are caught
 * next to the field before anything is sent. The server stays the authority: its message is shown when it refuses.
 */

import { formatBytes, formatCount } from "./format.js";

export const MAX_FILENAME_CHARS = 255;
const DISALLOWED_CONTROLS = /[\u0000-\u0008\u000B-\u001F\u007F-\u009F]/;
const LONE_SURROGATE = /\p{Cs}/u;
const CONTENT_TYPE = /^[a-z0-9][a-z0-9!#$&^_.+-]*\/[a-z0-9][a-z0-9!#$&^_.+-]*$/;

/** Length in code points, as Python's `len()` counts it (a JavaScript string's `length` counts UTF-16 units). */
export function codePointLength(text) {
  let count = 0;
  for (const _ of text) count += 1;
  return count;
}

/**
 * @param {string} raw the text as typed
 * @param {number} maxLength the cap from config.json
 * @returns {string | null} a message for the user, or null when the text is acceptable
 */
export function checkText(raw, maxLength) {
  // As the API does (handlers/jobs.py): CRLF and a lone CR count as one newline, then trim.
  const text = raw.replace(/\r\n?/g, "\n").trim();
  if (!text) return "Type a text to append to the file.";
  const length = codePointLength(text);
  if (length > maxLength) return `The text is ${length} characters; the limit is ${maxLength}.`;
  if (DISALLOWED_CONTROLS.test(text) || LONE_SURROGATE.test(text)) {
    return "The text may not contain control characters other than newline and tab.";
  }
  return null;
}

/**
 * @param {File | null | undefined} file
 * @param {number} maxBytes the cap from config.json
 * @returns {string | null} a message for the user, or null when the file is acceptable
 */
export function checkFile(file, maxBytes) {
  if (!file) return "Choose a file to process.";
  if (file.size === 0) return "The file is empty: choose a file with some content.";
  if (file.size > maxBytes) {
    const size = formatBytes(file.size);
    const limit = formatBytes(maxBytes);
    // Just over the limit both round to the same text ("1 MB"): then only exact byte counts explain the refusal.
    return size === limit
      ? `The file is ${formatCount(file.size)} bytes; the limit is ${formatCount(maxBytes)} bytes (${limit}).`
      : `The file is ${size}; the limit is ${limit}.`;
  }
  if (codePointLength(file.name) > MAX_FILENAME_CHARS) {
    return `The file name is longer than ${MAX_FILENAME_CHARS} characters: rename the file and choose it again.`;
  }
  return null;
}

/** The file's MIME type if the API accepts it as is, else "" (the API then stores it as application/octet-stream). */
export function contentTypeFor(file) {
  const type = (file.type || "").toLowerCase();
  return type.length <= 127 && CONTENT_TYPE.test(type) ? type : "";
}
