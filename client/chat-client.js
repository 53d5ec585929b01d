// @ts-check
// The chat API's client: an ES module with no dependencies, for browsers and Node 20+.
// Types: chat-client.d.ts. Contract: ../openapi.yaml.
//
//   import { createClient } from "./chat-client.js";
//   const chat = createClient({ baseUrl: "", getToken: () => token });
//   const { messages } = await chat.listMessages("general", { limit: 50 });
//   chat.subscribe("general", {
//     lastSeq: messages.at(-1)?.seq ?? 0,
//     onMessage: render,            // a message this subscription has not shown
//     onUpdate: render,             // an edit, a reaction change, a new reply (full state)
//     onDelete: render,             // the tombstone
//     onRead: ({ room_id, last_read_seq }) => clearBadge(room_id, last_read_seq),
//     onTyping: ({ user_email, expires_at }) => showTyping(user_email, expires_at),
//     onPresence: ({ user_email, status }) => markOnline(user_email, status === "online"),
//     onPresenceCrowded: ({ crowded, online_count }) => showCount(crowded, online_count),
//   });
//   const { online } = await chat.presence("general");   // who is online now
//   input.oninput = () => chat.sendTyping("general");      // at most one call a second
//   await chat.postMessage("general", { content: "hello" });
//   const secret = await chat.createRoom({ name: "Plans", visibility: "private" }); // id generated

/** @typedef {import("./chat-client.js").Message} Message */
/** @typedef {import("./chat-client.js").Upload} Upload */
/** @typedef {import("./chat-client.js").UploadProgress} UploadProgress */
/** @typedef {import("./chat-client.js").EventSourceLike} EventSourceLike */

/** Headers a browser sets itself and refuses from scripts (it derives them from the body). */
const UNSAFE_HEADERS = new Set(["content-length", "host", "connection"]);
/** `EventSource.CLOSED`: it gave up (a non-200 answer or a wrong content type). */
const CLOSED = 2;
/** `sendTyping` calls the API at most this often per room, as the server sends at most. */
const TYPING_EVERY_MS = 1000;

/** Every failure: `status` 0 and code `network_error` when no HTTP answer came. */
export class ChatApiError extends Error {
  /**
   * @param {number} status
   * @param {string} code
   * @param {string} message
   * @param {{ retryAfter?: number | null, cause?: unknown }} [options]
   */
  constructor(status, code, message, options = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = "ChatApiError";
    this.status = status;
    this.code = code;
    this.retryAfter = options.retryAfter ?? null;
  }
}

/** @param {string} value */
const enc = (value) => encodeURIComponent(value);

/**
 * Whether a failed call may be tried again: no answer, 503, or 429.
 * @param {unknown} err
 */
const retryable = (err) =>
  err instanceof ChatApiError && (err.status === 0 || err.status === 503 || err.status === 429);

/** @param {unknown} err */
const isAbort = (err) => err instanceof Error && err.name === "AbortError";

/**
 * Resolves after `ms`, or rejects when `signal` aborts.
 * @param {number} ms
 * @param {AbortSignal | undefined} signal
 * @returns {Promise<void>}
 */
function sleep(ms, signal) {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const timer = setTimeout(resolve, ms);
    signal?.addEventListener(
      "abort",
      () => {
        clearTimeout(timer);
        reject(signal.reason);
      },
      { once: true },
    );
  });
}

/** A UUID v4; `crypto.randomUUID` needs a secure context, `getRandomValues` does not. */
function uuid() {
  const c = globalThis.crypto;
  if (typeof c.randomUUID === "function") return c.randomUUID();
  const b = c.getRandomValues(new Uint8Array(16));
  b[6] = (b[6] & 0x0f) | 0x40;
  b[8] = (b[8] & 0x3f) | 0x80;
  const h = [...b].map((x) => x.toString(16).padStart(2, "0")).join("");
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

/**
 * The error a non-2xx answer stands for.
 * @param {number} status
 * @param {Headers} headers
 * @param {any} body
 */
function apiError(status, headers, body) {
  const retry = Number.parseInt(headers.get("retry-after") ?? "", 10);
  const error = body && typeof body === "object" ? body.error : null;
  return new ChatApiError(
    status,
    typeof error?.code === "string" ? error.code : `http_${status}`,
    typeof error?.message === "string" ? error.message : `HTTP ${status}`,
    { retryAfter: Number.isFinite(retry) ? retry : null },
  );
}

/** @param {Record<string, string>} headers */
function safeHeaders(headers) {
  return Object.fromEntries(
    Object.entries(headers).filter(([name]) => !UNSAFE_HEADERS.has(name.toLowerCase())),
  );
}

/** @type {import("./chat-client.js").createClient} */
export const createClient = (options = {}) => {
  const base = (options.baseUrl ?? "").replace(/\/+$/, "");
  const getToken = options.getToken ?? (() => null);
  const fetchImpl = options.fetch ?? globalThis.fetch.bind(globalThis);
  const minDelay = options.reconnectDelayMs?.min ?? 1000;
  /** When `sendTyping` last called the API, per room (ms since the epoch). */
  /** @type {Map<string, number>} */
  const typingSentAt = new Map();
  const maxDelay = options.reconnectDelayMs?.max ?? 30000;

  /**
   * One API call: JSON in and out, a ChatApiError for anything but 2xx.
   * @param {string} method
   * @param {string} path
   * @param {{ body?: unknown, signal?: AbortSignal }} [init]
   * @returns {Promise<any>}
   */
  async function request(method, path, init = {}) {
    /** @type {Record<string, string>} */
    const headers = {};
    const token = await getToken();
    if (token) headers.authorization = `Bearer ${token}`;
    if (init.body !== undefined) headers["content-type"] = "application/json";
    let response;
    try {
      response = await fetchImpl(base + path, {
        method,
        headers,
        body: init.body === undefined ? undefined : JSON.stringify(init.body),
        signal: init.signal,
      });
    } catch (err) {
      if (isAbort(err)) throw err;
      throw new ChatApiError(0, "network_error", "The API could not be reached.", { cause: err });
    }
    const text = await response.text();
    let body = null;
    try {
      body = text ? JSON.parse(text) : null;
    } catch {
      // Not JSON (a proxy's page, say): the status speaks for itself.
    }
    if (!response.ok) throw apiError(response.status, response.headers, body);
    return body;
  }

  /**
   * `call` until it succeeds, at most `attempts` times, on network errors, 503 and 429
   * (waiting `Retry-After` when given, else an exponential backoff with jitter). Only for
   * calls that are safe to repeat: a send with its client_id, and the idempotent writes.
   * @template T
   * @param {number} attempts
   * @param {AbortSignal | undefined} signal
   * @param {() => Promise<T>} call
   * @returns {Promise<T>}
   */
  async function withRetries(attempts, signal, call) {
    for (let attempt = 1; ; attempt++) {
      try {
        return await call();
      } catch (err) {
        if (!retryable(err) || attempt >= attempts) throw err;
        const { retryAfter } = /** @type {ChatApiError} */ (err);
        const backoff = Math.min(250 * 2 ** (attempt - 1), 5000) * (0.5 + Math.random() / 2);
        await sleep(retryAfter != null ? retryAfter * 1000 : backoff, signal);
      }
    }
  }

  /**
   * One message's path.
   * @param {string} room
   * @param {string} id
   */
  const messagePath = (room, id) => `/api/rooms/${enc(room)}/messages/${enc(id)}`;

  /**
   * PUTs with XMLHttpRequest, which reports upload progress.
   * @param {typeof XMLHttpRequest} XHR
   * @param {Upload} upload
   * @param {Blob} file
   * @param {((p: UploadProgress) => void) | undefined} onProgress
   * @param {AbortSignal | undefined} signal
   * @returns {Promise<void>}
   */
  function putWithXhr(XHR, upload, file, onProgress, signal) {
    return new Promise((resolve, reject) => {
      const xhr = new XHR();
      xhr.open(upload.method, upload.url);
      for (const [name, value] of Object.entries(safeHeaders(upload.headers))) {
        xhr.setRequestHeader(name, value);
      }
      xhr.upload.onprogress = (e) =>
        onProgress?.({ loaded: e.loaded, total: e.lengthComputable ? e.total : file.size });
      xhr.onload = () => {
        if (xhr.status >= 200 && xhr.status < 300) {
          onProgress?.({ loaded: file.size, total: file.size });
          resolve();
        } else {
          reject(
            new ChatApiError(xhr.status, "upload_failed", `Storage refused the file (HTTP ${xhr.status}).`),
          );
        }
      };
      xhr.onerror = () =>
        reject(new ChatApiError(0, "network_error", "The file could not be sent to storage."));
      xhr.onabort = () => reject(signal?.reason ?? new DOMException("Aborted", "AbortError"));
      signal?.addEventListener("abort", () => xhr.abort(), { once: true });
      xhr.send(file);
    });
  }

  /**
   * PUTs with fetch (Node has no XMLHttpRequest): progress at the start and the end only.
   * @param {Upload} upload
   * @param {Blob} file
   * @param {((p: UploadProgress) => void) | undefined} onProgress
   * @param {AbortSignal | undefined} signal
   */
  async function putWithFetch(upload, file, onProgress, signal) {
    onProgress?.({ loaded: 0, total: file.size });
    let response;
    try {
      response = await fetchImpl(upload.url, {
        method: upload.method,
        headers: safeHeaders(upload.headers),
        body: file,
        signal,
      });
    } catch (err) {
      if (isAbort(err)) throw err;
      throw new ChatApiError(0, "network_error", "The file could not be sent to storage.", { cause: err });
    }
    await response.arrayBuffer().catch(() => undefined);
    if (!response.ok) {
      throw new ChatApiError(response.status, "upload_failed", `Storage refused the file (HTTP ${response.status}).`);
    }
    onProgress?.({ loaded: file.size, total: file.size });
  }

  return {
    async listRooms({ signal } = {}) {
      return (await request("GET", "/api/rooms", { signal })).rooms;
    },

    // Without `id` the server picks an unguessable one (what private rooms should use).
    createRoom(input = {}, { signal } = {}) {
      return request("POST", "/api/rooms", { body: input, signal });
    },

    listMessages(room, { limit, before, after, signal } = {}) {
      const query = new URLSearchParams();
      if (limit !== undefined) query.set("limit", String(limit));
      if (before !== undefined) query.set("before", String(before));
      if (after !== undefined) query.set("after", String(after));
      const qs = query.toString();
      return request("GET", `/api/rooms/${enc(room)}/messages${qs ? `?${qs}` : ""}`, { signal });
    },

    // The same client_id on every try: a send that reached the server once is answered
    // with the stored message (200), never stored twice.
    postMessage(room, input = {}) {
      const { content = "", fileIds, clientId, attempts = 5, signal } = input;
      const replyTo = input.replyTo ?? input.reply_to;
      /** @type {Record<string, unknown>} */
      const body = { content, client_id: clientId ?? uuid() };
      if (fileIds?.length) body.file_ids = fileIds;
      if (replyTo) body.reply_to = replyTo;
      return withRetries(attempts, signal, () =>
        request("POST", `/api/rooms/${enc(room)}/messages`, { body, signal }),
      );
    },

    // Edits, deletes, reactions and read marks are idempotent: retried like a send.
    editMessage(room, id, content, { attempts = 5, signal } = {}) {
      return withRetries(attempts, signal, () =>
        request("PATCH", messagePath(room, id), { body: { content }, signal }),
      );
    },

    deleteMessage(room, id, { attempts = 5, signal } = {}) {
      return withRetries(attempts, signal, () => request("DELETE", messagePath(room, id), { signal }));
    },

    addReaction(room, id, emoji, { attempts = 5, signal } = {}) {
      const path = `${messagePath(room, id)}/reactions/${enc(emoji)}`;
      return withRetries(attempts, signal, () => request("PUT", path, { signal }));
    },

    removeReaction(room, id, emoji, { attempts = 5, signal } = {}) {
      const path = `${messagePath(room, id)}/reactions/${enc(emoji)}`;
      return withRetries(attempts, signal, () => request("DELETE", path, { signal }));
    },

    listReplies(room, id, { limit, after, signal } = {}) {
      const query = new URLSearchParams();
      if (limit !== undefined) query.set("limit", String(limit));
      if (after !== undefined) query.set("after", String(after));
      const qs = query.toString();
      return request("GET", `${messagePath(room, id)}/replies${qs ? `?${qs}` : ""}`, { signal });
    },

    markRead(room, seq, { attempts = 5, signal } = {}) {
      return withRetries(attempts, signal, () =>
        request("PUT", `/api/rooms/${enc(room)}/read`, { body: { seq }, signal }),
      );
    },

    async uploadFile(room, file, { onProgress, fileName, contentType, signal } = {}) {
      const name = fileName ?? (/** @type {any} */ (file).name || "file");
      /** @type {Upload} */
      const upload = await request("POST", "/api/uploads", {
        body: {
          room_id: room,
          file_name: name,
          // A recorder's blob says `audio/webm;codecs=opus`: the API takes the bare type.
          content_type: (contentType || file.type || "application/octet-stream").split(";")[0].trim(),
          size: file.size,
        },
        signal,
      });
      const XHR = options.XMLHttpRequest === undefined ? globalThis.XMLHttpRequest : options.XMLHttpRequest;
      if (XHR) await putWithXhr(XHR, upload, file, onProgress, signal);
      else await putWithFetch(upload, file, onProgress, signal);
      return upload.id;
    },

    // Called on every keystroke, it still calls the API at most once a second per room
    // (the server's limit too): resolves `true` when it called, `false` when throttled.
    async sendTyping(room, { signal } = {}) {
      const now = Date.now();
      const last = typingSentAt.get(room);
      if (last !== undefined && now - last < TYPING_EVERY_MS) return false;
      typingSentAt.set(room, now);
      await request("POST", `/api/rooms/${enc(room)}/typing`, { signal });
      return true;
    },

    presence(room, { signal } = {}) {
      return request("GET", `/api/rooms/${enc(room)}/presence`, { signal });
    },

    subscribe(room, subscription = /** @type {any} */ ({})) {
      const {
        onMessage,
        onUpdate,
        onDelete,
        onRead,
        onTyping,
        onPresence,
        onPresenceCrowded,
        onReset,
        onOpen,
        onError,
        lastSeq,
      } = subscription;
      /** @type {import("./chat-client.js").EventSourceConstructor | undefined} */
      const ES = options.EventSource ?? /** @type {any} */ (globalThis).EventSource;
      if (!ES) throw new Error("No EventSource here: pass one to createClient({ EventSource }).");
      const Source = ES;
      // The resume point: the newest event id received. Event ids count every change to the
      // room's log; ids from before edits existed were message seqs, and a seq is still a
      // safe place to resume (an event id is never below its message's seq, so resuming
      // after a seq can only repeat changes, which are upserts, never skip one).
      /** @type {number | undefined} */
      let last = subscription.lastEventId ?? lastSeq;
      // Messages the caller has: every seq up to `upTo` (the `lastSeq` it loaded, or a
      // reset's), and the seqs above it this subscription delivered (`seen`, folded into
      // `upTo` as it fills up; seqs are gapless, so it stays small).
      /** @type {number | undefined} */
      let upTo = lastSeq;
      /** @type {Set<number>} */
      const seen = new Set();
      /** @type {number | undefined} */
      let newestSeq = lastSeq;
      let closed = false;
      let failures = 0;
      /** @type {EventSourceLike | null} */
      let source = null;
      /** @type {ReturnType<typeof setTimeout> | undefined} */
      let timer;
      /** @type {AbortController | null} */
      let probing = null;

      /** @param {number} seq */
      const known = (seq) => (upTo !== undefined && seq <= upTo) || seen.has(seq);
      /** @param {number} seq */
      function remember(seq) {
        if (newestSeq === undefined || seq > newestSeq) newestSeq = seq;
        if (upTo !== undefined && seq <= upTo) return;
        seen.add(seq);
        if (upTo !== undefined) while (seen.delete(upTo + 1)) upTo += 1;
      }

      /**
       * A change to a message: dropped when its event id is not past the resume point (a
       * repeat), else delivered as new (`onMessage`) or as a change (`onUpdate`,
       * `onDelete`) by whether the caller has the message: an upsert by message.
       * @param {"message" | "message.updated" | "message.deleted"} type
       * @param {MessageEvent} event
       */
      function change(type, event) {
        /** @type {Message} */
        const message = JSON.parse(event.data);
        // An old server's `message` frames carry their seq as id; a stream with no id at all
        // (a test double, say) falls back to it for new messages.
        const id = event.lastEventId ? Number(event.lastEventId) : type === "message" ? message.seq : NaN;
        if (Number.isFinite(id)) {
          if (last !== undefined && id <= last) return; // delivered already
          last = id;
        }
        const had = known(message.seq);
        remember(message.seq);
        if (type === "message.deleted") onDelete?.(message);
        else if (had) onUpdate?.(message);
        // Not had: a `message` is new. So is a `message.updated` above `lastSeq` (its first
        // sight: changes were collapsed); without a `lastSeq`, it is a change to a message
        // from before the subscription, which the caller listed.
        else if (type === "message" || upTo !== undefined) onMessage?.(message);
        else onUpdate?.(message);
      }

      async function open() {
        timer = undefined;
        let token;
        try {
          token = await getToken();
        } catch (err) {
          return reopenLater(new ChatApiError(0, "token_unavailable", "No token for the stream.", { cause: err }));
        }
        if (closed) return;
        const query = new URLSearchParams();
        if (token) query.set("access_token", token);
        if (last !== undefined) query.set("after", String(last));
        const url = `${base}/api/rooms/${enc(room)}/stream?${query}`;
        const es = new Source(url);
        source = es;
        // Whether this EventSource has been open since its last error: a stream the server
        // ended is resumed by the EventSource itself (with Last-Event-ID), once.
        let healthy = false;
        es.onopen = () => {
          failures = 0;
          healthy = true;
          onOpen?.();
        };
        es.addEventListener("message", (event) => change("message", event));
        es.addEventListener("message.updated", (event) => change("message.updated", event));
        es.addEventListener("message.deleted", (event) => change("message.deleted", event));
        // A read mark moved (this user's, in any room: another tab, or their own post). It
        // has no id of its own, so it never moves the resume point.
        es.addEventListener("read", (event) => onRead?.(JSON.parse(event.data)));
        // Ephemeral, no id either: never replayed, never moving the resume point. The
        // typist's own streams get their typing too; the caller filters by user_email.
        es.addEventListener("typing", (event) => onTyping?.(JSON.parse(event.data)));
        es.addEventListener("presence", (event) => onPresence?.(JSON.parse(event.data)));
        // Past PRESENCE_EVENTS_MAX_ONLINE users present, no `presence` per user: one of these
        // says so (and, with crowded: false, that an `online` for everyone follows).
        es.addEventListener("presence.crowded", (event) => onPresenceCrowded?.(JSON.parse(event.data)));
        es.addEventListener("reset", (event) => {
          const data = JSON.parse(event.data);
          /** @type {number} */
          const lastSeq = data.last_seq;
          const fromId = event.lastEventId ? Number(event.lastEventId) : NaN;
          /** @type {number} */
          const lastEventId = data.last_event_id ?? (Number.isFinite(fromId) ? fromId : lastSeq);
          last = lastEventId;
          upTo = lastSeq;
          newestSeq = lastSeq;
          seen.clear();
          onReset?.({ lastSeq, lastEventId });
        });
        es.onerror = () => {
          if (closed || source !== es) return;
          // CONNECTING after an open stream: the EventSource resumes by itself with
          // Last-Event-ID (the server ends streams every few minutes). CLOSED means it gave
          // up on a non-200 (401 for an expired token, 429, 503), and an error before any
          // open would be retried every second whatever the server said: take over, learn
          // why with a probe (EventSource cannot read the status or Retry-After), and reopen
          // after a delay, after the last event id, with a fresh token.
          if (healthy && es.readyState !== CLOSED) {
            healthy = false;
            return;
          }
          es.close();
          source = null;
          probe(url).then(reopenLater, reopenLater);
        };
      }

      /**
       * Asks the stream URL once with fetch, for what EventSource hides: the status, the
       * error code and `Retry-After`. A 200 (the stream would open now) is cut off at once.
       * @param {string} url
       * @returns {Promise<ChatApiError>}
       */
      async function probe(url) {
        const controller = new AbortController();
        probing = controller;
        try {
          const response = await fetchImpl(url, {
            headers: { accept: "text/event-stream" },
            signal: controller.signal,
          });
          if (response.ok) {
            controller.abort();
            return new ChatApiError(0, "stream_closed", "The stream was interrupted; reopening.");
          }
          let body = null;
          try {
            body = JSON.parse(await response.text());
          } catch {
            // Not JSON (a proxy's page): the status and Retry-After still count.
          }
          return apiError(response.status, response.headers, body);
        } catch (err) {
          return new ChatApiError(0, "stream_closed", "The stream could not be reached; reopening.", {
            cause: err,
          });
        } finally {
          if (probing === controller) probing = null;
        }
      }

      const start = () =>
        open().catch((err) =>
          reopenLater(new ChatApiError(0, "stream_closed", "The stream could not be opened.", { cause: err })),
        );
      /**
       * Reopens after a jittered exponential backoff (half to all of min·2^(failures-1),
       * capped at max), and never before the server's `Retry-After`, itself spread by up to
       * a quarter so refused clients do not all come back in the same second.
       * @param {ChatApiError} error
       */
      function reopenLater(error) {
        if (closed) return;
        failures += 1;
        const ceiling = Math.min(maxDelay, minDelay * 2 ** (failures - 1));
        const backoff = ceiling / 2 + (Math.random() * ceiling) / 2;
        const delay =
          error.retryAfter != null
            ? Math.max(backoff, error.retryAfter * 1000 * (1 + Math.random() / 4))
            : backoff;
        onError?.(error, delay);
        timer = setTimeout(start, delay);
      }

      start();
      return {
        get lastSeq() {
          return newestSeq;
        },
        get lastEventId() {
          return last;
        },
        close() {
          closed = true;
          clearTimeout(timer);
          probing?.abort();
          source?.close();
        },
      };
    },

    listMembers(room, { signal } = {}) {
      return request("GET", `/api/rooms/${enc(room)}/members`, { signal });
    },

    addMember(room, email, { signal } = {}) {
      return request("POST", `/api/rooms/${enc(room)}/members`, { body: { email }, signal });
    },

    async removeMember(room, email, { signal } = {}) {
      await request("DELETE", `/api/rooms/${enc(room)}/members/${enc(email)}`, { signal });
    },
  };
};
