// Shared by the client tests: they run against a dev server (`cargo dev`, or the one
// tests/e2e/run.sh starts) at CHAT_API_URL.
import { EventSource } from "eventsource";

import { createClient } from "../chat-client.js";

export const API = (process.env.CHAT_API_URL ?? "http://localhost:3000").replace(/\/+$/, "");

/** A name no other test (or run) uses: rooms and users are per test. */
export function unique(prefix = "t") {
  return `${prefix}-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 8)}`;
}

/**
 * A token for `email` from the dev server's dev-only route.
 * @param {string} email
 * @returns {Promise<string>}
 */
export async function devToken(email) {
  const response = await fetch(`${API}/api/dev/token`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ email }),
  });
  if (!response.ok) throw new Error(`dev token: HTTP ${response.status}`);
  return (await response.json()).token;
}

/**
 * A client signed in as a fresh user (rate limits are per user).
 * @param {Partial<import("../chat-client.js").ClientOptions>} [options]
 */
export async function signedIn(options = {}) {
  const email = `${unique("user")}@example.com`;
  const token = await devToken(email);
  const client = createClient({
    baseUrl: API,
    getToken: () => token,
    // Node 20 has no EventSource: the `eventsource` package is a spec-compliant one.
    EventSource: /** @type {any} */ (EventSource),
    ...options,
  });
  return { client, email, token };
}

/**
 * Resolves when `predicate` holds, polling every 20 ms; rejects after `ms`.
 * @param {() => boolean} predicate
 * @param {number} ms
 * @param {string} what
 */
export async function until(predicate, ms, what) {
  const deadline = Date.now() + ms;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/** A 4×4 PNG (red and blue stripes). */
export const PNG = Buffer.from(
  "iVBORw0KGgoAAAANSUhEUgAAAAQAAAAECAIAAAAmkwkpAAAAFElEQVR4nGP4z8DA0PAfQjIQxwEAALIT8Y45GjQAAAAASUVORK5CYII=",
  "base64",
);

/** A stand-in EventSource the test drives by hand. */
export class FakeEventSource {
  /** @type {FakeEventSource[]} */
  static opened = [];
  /** @param {string} url */
  constructor(url) {
    this.url = new URL(url);
    this.readyState = 0;
    /** @type {Record<string, ((e: MessageEvent) => void)[]>} */
    this.listeners = {};
    /** @type {((e: Event) => unknown) | null} */
    this.onerror = null;
    /** @type {((e: Event) => unknown) | null} */
    this.onopen = null;
    this.closed = false;
    /** The "last event ID buffer": the newest `id:` seen. */
    this.lastEventId = "";
    FakeEventSource.opened.push(this);
  }
  /** @param {string} type @param {(e: MessageEvent) => void} listener */
  addEventListener(type, listener) {
    (this.listeners[type] ??= []).push(listener);
  }
  close() {
    this.closed = true;
    this.readyState = 2;
  }
  open() {
    this.readyState = 1;
    this.onopen?.(new Event("open"));
  }
  /**
   * Dispatches an event; `id` (optional) is its `id:` line. Like a browser's EventSource,
   * an event without one carries the last id seen (the "last event ID buffer").
   * @param {string} type @param {unknown} data @param {number} [id]
   */
  emit(type, data, id) {
    if (id !== undefined) this.lastEventId = String(id);
    const event = new MessageEvent(type, { data: JSON.stringify(data), lastEventId: this.lastEventId });
    for (const listener of this.listeners[type] ?? []) listener(event);
  }
  /** A non-200 answer: the EventSource gives up. */
  refuse() {
    this.readyState = 2;
    this.onerror?.(new Event("error"));
  }
}

