// The portal API: one fetch wrapper (CSRF header, one error shape) and a
// queue for writes, so a network failure loses nothing the client did.

export class ApiError extends Error {
  constructor({ status = 0, code = "NETWORK_ERROR", message = "", fields = null, details = null, network = false } = {}) {
    super(message || "Something went wrong.");
    this.status = status;
    this.code = code;
    this.fields = fields;
    this.details = details; // the facts some codes carry (retry_after_seconds, reason)
    this.network = network;
  }

  // Worth trying again later: no answer, the server failing, or throttling.
  get retryable() {
    return this.network || this.status >= 500 || this.status === 429;
  }
}

function csrfToken() {
  const match = document.cookie.match(/(?:^|;\s*)csrftoken=([^;]+)/);
  return match ? decodeURIComponent(match[1]) : "";
}

export async function request(method, url, body, { signal } = {}) {
  const headers = { Accept: "application/json" };
  const init = { method, headers, credentials: "same-origin", signal };
  if (method !== "GET") headers["X-CSRFToken"] = csrfToken();
  if (body instanceof FormData) {
    init.body = body; // multipart: the browser writes the Content-Type and its boundary
  } else if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(url, init);
  } catch {
    throw new ApiError({ network: true, message: "No connection to the server." });
  }
  if (response.status === 204) return null;
  let data = null;
  try {
    data = await response.json();
  } catch {
    data = null;
  }
  if (!response.ok) {
    const error = (data && data.error) || {};
    throw new ApiError({
      status: response.status,
      code: error.code || `HTTP_${response.status}`,
      message: error.message || `The server answered ${response.status}.`,
      fields: error.fields || null,
      details: error.details || null,
    });
  }
  return data;
}

/**
 * Writes run one at a time, in order. A write the server refuses (4xx) is
 * dropped and its `onFail` rolls the optimistic change back; a write that
 * did not get through (network, 5xx, 429) stays queued, is kept in
 * localStorage (a reload replays it) and is retried: on demand, when the
 * browser comes back online, and with a growing delay.
 */
export class WriteQueue {
  constructor(storageKey, { onStall, onDrain } = {}) {
    this.storageKey = storageKey;
    this.items = [];
    this.running = false;
    this.stalled = false;
    this.delay = 2000;
    this.timer = null;
    this.onStall = onStall || (() => {});
    this.onDrain = onDrain || (() => {});
    window.addEventListener("online", () => this.retry());
    for (const saved of this.load()) this.items.push({ ...saved, replayed: true });
  }

  load() {
    try {
      return JSON.parse(localStorage.getItem(this.storageKey) || "[]");
    } catch {
      return [];
    }
  }

  save() {
    const plain = this.items.map(({ method, url, body, label }) => ({ method, url, body, label }));
    try {
      if (plain.length) localStorage.setItem(this.storageKey, JSON.stringify(plain));
      else localStorage.removeItem(this.storageKey);
    } catch {
      // Private mode or a full quota: the queue still lives in memory.
    }
  }

  get pending() {
    return this.items.length;
  }

  push(write) {
    this.items.push(write);
    this.save();
    this.run();
  }

  retry() {
    clearTimeout(this.timer);
    this.stalled = false;
    this.run();
  }

  async run() {
    if (this.running || this.stalled) return;
    this.running = true;
    while (this.items.length) {
      const write = this.items[0];
      try {
        await request(write.method, write.url, write.body);
        this.items.shift();
        this.save();
        this.delay = 2000;
        if (write.onDone) write.onDone();
      } catch (error) {
        if (error instanceof ApiError && error.retryable) {
          this.stalled = true;
          this.onStall(this.items.length, error);
          this.timer = setTimeout(() => this.retry(), this.delay);
          this.delay = Math.min(this.delay * 2, 60000);
          this.running = false;
          return;
        }
        this.items.shift();
        this.save();
        if (write.onFail) write.onFail(error);
      }
    }
    this.running = false;
    this.onDrain();
  }
}
