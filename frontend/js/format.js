/** Formatting of sizes, durations and times for people. */

const UNITS = ["KB", "MB", "GB"];

/** 1536 → "1.5 KB"; binary units, as the API's limits are (`maxFileMb` × 1024 × 1024). */
export function formatBytes(bytes) {
  if (bytes < 1024) return `${bytes} ${bytes === 1 ? "byte" : "bytes"}`;
  let value = bytes;
  let unit = "";
  for (const next of UNITS) {
    if (value < 1024) break;
    value /= 1024;
    unit = next;
  }
  const digits = value >= 100 ? 0 : 1;
  return `${value.toFixed(digits).replace(/\.0$/, "")} ${unit}`;
}

const COUNT = new Intl.NumberFormat();

/** 1048577 → "1,048,577" in the reader's locale. */
export function formatCount(value) {
  return COUNT.format(value);
}

/** 65000 → "1 min 05 s"; never negative (a client clock behind the server's must not show "-3 s"). */
export function formatDuration(ms) {
  const total = Math.max(0, Math.floor(ms / 1000));
  const hours = Math.floor(total / 3600);
  const minutes = Math.floor((total % 3600) / 60);
  const seconds = total % 60;
  if (hours) return `${hours} h ${String(minutes).padStart(2, "0")} min`;
  if (minutes) return `${minutes} min ${String(seconds).padStart(2, "0")} s`;
  return `${seconds} s`;
}

const TIME = new Intl.DateTimeFormat(undefined, { hour: "2-digit", minute: "2-digit", second: "2-digit" });
const DATE_TIME = new Intl.DateTimeFormat(undefined, {
  day: "numeric", month: "short", hour: "2-digit", minute: "2-digit",
});

/** An ISO-8601 timestamp as a local time, with the date when it is not today. */
export function formatWhen(iso, now = new Date()) {
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return "";
  return date.toDateString() === now.toDateString() ? TIME.format(date) : DATE_TIME.format(date);
}

/** Milliseconds since the epoch, or NaN for a missing or unreadable timestamp. */
export function parseTime(iso) {
  return iso ? Date.parse(iso) : Number.NaN;
}

/** Last part of `<bucket>/<key>`: the file's name. */
export function baseName(path) {
  if (!path) return "";
  const parts = String(path).split("/");
  return parts[parts.length - 1];
}

/** What the page calls a job when it speaks of it: its file's name. */
export function jobName(job) {
  return baseName(job.input_file_path) || "Job";
}
