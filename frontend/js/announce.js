/**
 * One polite live region for the whole page. Messages are queued briefly so that two changes in the same moment
 * (a job succeeding while another starts) are both read, and the same text twice in a row is read again.
 */

const GAP_MS = 600;

export function createAnnouncer(region) {
  const queue = [];
  let timer = null;

  function flush() {
    const message = queue.shift();
    if (message === undefined) {
      timer = null;
      return;
    }
    region.textContent = "";
    // A fresh text node in a new task makes screen readers treat a repeated message as new.
    requestAnimationFrame(() => {
      region.textContent = message;
    });
    timer = setTimeout(flush, GAP_MS);
  }

  return function announce(message) {
    if (!message) return;
    queue.push(message);
    if (!timer) flush();
  };
}
