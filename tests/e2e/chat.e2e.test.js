// The demo page (public/index.html) in real headless Chromium: two users in one room.
//
// Uses the dev server at CHAT_API_URL (tests/e2e/run.sh starts one with
// STREAM_MAX_SECONDS=3), or starts its own. Chromium is Debian's (`apt-get install
// chromium`), at CHROMIUM_PATH or /usr/bin/chromium; nothing downloads a browser.
import assert from "node:assert/strict";
import { mkdirSync } from "node:fs";
import { deflateSync } from "node:zlib";
import { after, before, test } from "node:test";
import { fileURLToPath } from "node:url";

import { chromium } from "playwright-core";

import { startDevServer } from "./dev-server.js";

const ARTIFACTS = fileURLToPath(new URL("../artifacts/", import.meta.url));
const STREAM_MAX_SECONDS = Number(process.env.STREAM_MAX_SECONDS ?? 3);
/** A 4×4 PNG (red and blue stripes). */
const PNG = Buffer.from(
  "iVBORw0KGgoAAAANSUhEUgAAAAQAAAAECAIAAAAmkwkpAAAAFElEQVR4nGP4z8DA0PAfQjIQxwEAALIT8Y45GjQAAAAASUVORK5CYII=",
  "base64",
);

/** @type {string} */
let api;
/** @type {(() => Promise<void>) | undefined} */
let stopServer;
/** @type {import("playwright-core").Browser} */
let browser;

before(async () => {
  if (process.env.CHAT_API_URL) {
    api = process.env.CHAT_API_URL.replace(/\/+$/, "");
  } else {
    const server = await startDevServer({ env: { STREAM_MAX_SECONDS: String(STREAM_MAX_SECONDS) } });
    api = server.url;
    stopServer = server.stop;
  }
  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM_PATH ?? "/usr/bin/chromium",
    headless: true,
    // playwright-core gives each launch a fresh, temporary --user-data-dir of its own.
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
  });
});

after(async () => {
  await browser?.close();
  await stopServer?.();
});

/**
 * A signed-in page in a context of its own (its own storage: another user).
 * @param {string} email
 */
async function userPage(email) {
  const context = await browser.newContext({ viewport: { width: 1100, height: 760 } });
  const page = await context.newPage();
  /** @type {string[]} */
  const problems = [];
  page.on("pageerror", (err) => problems.push(`${email}: ${err.message}`));
  page.on("console", (m) => {
    // The one failed request the test causes on purpose is the 409 of a taken room id.
    if (m.type() === "error" && !m.text().includes("status of 409")) {
      problems.push(`${email}: console: ${m.text()}`);
    }
  });
  /** @type {string[]} */
  const streams = [];
  page.on("request", (r) => {
    if (r.url().includes("/stream?")) streams.push(r.url());
  });
  await page.goto(`${api}/`);
  await page.fill("#email", email);
  await page.click("#signin button[type=submit]");
  await page.waitForSelector("#sidebar:not([hidden])");
  return { page, problems, streams };
}

/**
 * Waits until `page`'s stream is live (in `room`, when given: right after a click the old
 * room may still be on screen).
 * @param {import("playwright-core").Page} page
 * @param {string} [room]
 */
async function waitLive(page, room) {
  if (room !== undefined) {
    await page.waitForFunction((id) => document.getElementById("room-title")?.textContent === id, room, {
      timeout: 10_000,
    });
  }
  await page.waitForSelector('#status[data-state="live"]', { timeout: 10_000 });
}

/**
 * Waits until `page` shows a message containing `text`; returns the ms it took.
 * @param {import("playwright-core").Page} page
 * @param {string} text
 * @param {number} timeout
 */
async function seen(page, text, timeout) {
  const started = Date.now();
  await page.locator("#messages li .text", { hasText: text }).first().waitFor({ timeout });
  return Date.now() - started;
}

/**
 * The first image in the list has loaded (decoded, with a width).
 * @param {import("playwright-core").Page} page
 */
async function imageLoaded(page) {
  await page.waitForFunction(
    () => {
      const img = /** @type {HTMLImageElement | null} */ (document.querySelector("#messages img"));
      return img !== null && img.complete && img.naturalWidth > 0;
    },
    undefined,
    { timeout: 5000 },
  );
  return page.evaluate(() => /** @type {HTMLImageElement} */ (document.querySelector("#messages img")).naturalWidth);
}

/** @param {string} email */
async function token(email) {
  const response = await fetch(`${api}/api/dev/token`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ email }),
  });
  return (await response.json()).token;
}

test("two users chat in one room: live messages, an image, reconnects, history", async () => {
  mkdirSync(ARTIFACTS, { recursive: true });
  const suffix = `${Date.now().toString(36)}${Math.random().toString(36).slice(2, 6)}`;
  const room = `e2e-${suffix}`;
  const a = await userPage(`alice-${suffix}@example.com`);
  const b = await userPage(`bob-${suffix}@example.com`);

  // A creates the room; B picks it from the list (after reloading it).
  await a.page.fill("#room-id", room);
  await a.page.click("#new-room button[type=submit]");
  await waitLive(a.page, room);
  assert.equal(await a.page.textContent("#room-title"), room);
  await b.page.reload();
  await b.page.click(`#rooms button[data-room="${room}"]`);
  await waitLive(b.page, room);

  // A sends; B sees it within 2 s.
  await a.page.fill("#text", "hello from A");
  await a.page.click("#send");
  const took = await seen(b.page, "hello from A", 2000);
  assert.ok(took < 2000, `B saw it after ${took} ms`);

  // A uploads a PNG; B sees the image (loaded, with a width), A saw the progress bar.
  await a.page.evaluate(() => {
    const progress = /** @type {HTMLProgressElement} */ (document.getElementById("progress"));
    new MutationObserver(() => {
      if (!progress.hidden) /** @type {any} */ (window).progressShown = true;
    }).observe(progress, { attributes: true });
  });
  await a.page.setInputFiles("#file", { name: "stripes.png", mimeType: "image/png", buffer: PNG });
  await a.page.fill("#text", "a picture");
  await a.page.click("#send");
  await seen(b.page, "a picture", 5000);
  assert.equal(await imageLoaded(b.page), 4);
  assert.equal(await a.page.evaluate(() => /** @type {any} */ (window).progressShown), true);
  assert.equal(await a.page.getAttribute("#messages img", "alt"), "stripes.png");

  // The server ends every stream after STREAM_MAX_SECONDS; B's reconnects and still gets
  // messages, each once.
  const opened = b.streams.length;
  await b.page.waitForTimeout(STREAM_MAX_SECONDS * 1100 + 1500);
  assert.ok(b.streams.length > opened, `B's stream was not reopened (${b.streams.length} requests)`);
  await waitLive(b.page);
  await a.page.fill("#text", "after the reconnect");
  await a.page.click("#send");
  assert.ok((await seen(b.page, "after the reconnect", 2000)) < 2000);
  assert.equal(await b.page.locator("#messages li").count(), 3, "each message once");

  // B reloads and sees the history, image included.
  await b.page.reload();
  await waitLive(b.page);
  const texts = await b.page.locator("#messages li .text").allTextContents();
  assert.deepEqual(texts, ["hello from A", "a picture", "after the reconnect"]);
  assert.equal(await imageLoaded(b.page), 4);
  await b.page.screenshot({ path: `${ARTIFACTS}e2e-chat-bob.png` });
  await a.page.screenshot({ path: `${ARTIFACTS}e2e-chat-alice.png` });

  // "Load older": 55 more messages (from 3 users: posts are rate-limited per user), then
  // the page shows the newest 50 and loads the rest on demand.
  const tokens = await Promise.all([1, 2, 3].map((n) => token(`seed${n}-${suffix}@example.com`)));
  for (let i = 0; i < 55; i++) {
    const response = await fetch(`${api}/api/rooms/${room}/messages`, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: `Bearer ${tokens[i % 3]}` },
      body: JSON.stringify({ content: `seed ${i}` }),
    });
    assert.equal(response.status, 201);
  }
  await b.page.reload();
  await waitLive(b.page);
  assert.equal(await b.page.locator("#messages li").count(), 50);
  await b.page.click("#older");
  await b.page.locator("#messages li").nth(57).waitFor();
  assert.equal(await b.page.locator("#messages li").count(), 58);
  assert.equal(await b.page.locator("#older").isHidden(), true);
  assert.equal(await b.page.locator("#messages li .text").first().textContent(), "hello from A");

  // API errors show in the banner.
  await a.page.fill("#room-id", room);
  await a.page.click("#new-room button[type=submit]");
  await a.page.waitForSelector("#error:not([hidden])");
  assert.match((await a.page.textContent("#error-text")) ?? "", /room_exists/);
  await a.page.screenshot({ path: `${ARTIFACTS}e2e-error-banner.png` });

  // A private room takes the text as its name; the server picks an id nobody can guess.
  await a.page.fill("#room-id", `plans-${suffix}`);
  await a.page.check("#room-private");
  await a.page.click("#new-room button[type=submit]");
  await a.page.waitForFunction((name) => document.querySelector("#room-title")?.textContent === name, `plans-${suffix}`);
  await waitLive(a.page);
  const privateId = decodeURIComponent(new URL(a.page.url()).hash.replace(/^#room=/, ""));
  assert.match(privateId, /^[A-Za-z0-9_-]{22}$/, "a generated id");
  const listed = await a.page.locator(`#rooms button[data-room="${privateId}"]`).textContent();
  assert.ok(listed?.startsWith(`🔒 plans-${suffix}`), `listed as ${listed}`);

  assert.deepEqual([...a.problems, ...b.problems], [], "no page errors");
});

/**
 * The shown message whose own text (not a quote of it) contains `text`.
 * @param {import("playwright-core").Page} page
 * @param {string} text
 */
function item(page, text) {
  return page.locator("#messages li").filter({ has: page.locator(":scope > .text", { hasText: text }) });
}

/**
 * The unread badge of `room` in the room list.
 * @param {import("playwright-core").Page} page
 * @param {string} room
 */
function badge(page, room) {
  return page.locator(`#rooms button[data-room="${room}"] .badge`);
}

test("two users converse: a reply with a quote, reactions, an edit, a delete, unread badges", async () => {
  mkdirSync(ARTIFACTS, { recursive: true });
  const suffix = `${Date.now().toString(36)}${Math.random().toString(36).slice(2, 6)}`;
  const room = `conv-${suffix}`;
  const other = `conv-other-${suffix}`;
  const a = await userPage(`alice-${suffix}@example.com`);
  const b = await userPage(`bob-${suffix}@example.com`);

  // A creates two rooms and stays in the first; B opens it.
  for (const id of [other, room]) {
    await a.page.fill("#room-id", id);
    await a.page.click("#new-room button[type=submit]");
    await waitLive(a.page, id);
  }
  assert.equal(await a.page.textContent("#room-title"), room);
  await b.page.reload();
  await b.page.click(`#rooms button[data-room="${room}"]`);
  await waitLive(b.page, room);

  // A posts; B replies with a quote of it.
  await a.page.fill("#text", "original from A");
  await a.page.click("#send");
  await seen(b.page, "original from A", 5000);
  await item(b.page, "original from A").locator("button.reply").click();
  assert.match((await b.page.textContent("#composer-what")) ?? "", /Replying to alice-.*original from A/);
  await b.page.fill("#text", "reply from B");
  await b.page.click("#send");
  await seen(a.page, "reply from B", 5000);
  for (const page of [a.page, b.page]) {
    assert.match((await item(page, "reply from B").locator(".quote").textContent()) ?? "", /^alice-.*: original from A$/);
  }
  await item(a.page, "original from A").locator(".meta", { hasText: "1 reply" }).waitFor({ timeout: 5000 });
  assert.equal(await b.page.isHidden("#composer-context"), true, "the composer is back to plain sends");

  // A reacts to B's reply; B sees the count, and "me" only on A's side.
  await item(a.page, "reply from B").locator('button.reaction[data-emoji="👍"]').click();
  await item(b.page, "reply from B").locator('button.reaction[data-emoji="👍"][data-count="1"]').waitFor({ timeout: 5000 });
  assert.equal(await item(b.page, "reply from B").locator('button.reaction[data-emoji="👍"]').getAttribute("aria-pressed"), "false");
  assert.equal(await item(a.page, "reply from B").locator('button.reaction[data-emoji="👍"]').getAttribute("aria-pressed"), "true");
  assert.match((await item(b.page, "reply from B").locator('button.reaction[data-emoji="👍"]').textContent()) ?? "", /👍 1/);
  // B reacts too: A sees 2; B takes it back: A sees 1 again.
  await item(b.page, "reply from B").locator('button.reaction[data-emoji="👍"]').click();
  await item(a.page, "reply from B").locator('button.reaction[data-emoji="👍"][data-count="2"]').waitFor({ timeout: 5000 });
  await item(b.page, "reply from B").locator('button.reaction[data-emoji="👍"][aria-pressed="true"]').click();
  await item(a.page, "reply from B").locator('button.reaction[data-emoji="👍"][data-count="1"]').waitFor({ timeout: 5000 });

  // Only the author may edit: B has no Edit on A's message. A edits; B sees the edit.
  assert.equal(await item(b.page, "original from A").locator("button.edit").count(), 0);
  await item(a.page, "original from A").locator("button.edit").click();
  assert.equal(await a.page.inputValue("#text"), "original from A");
  await a.page.fill("#text", "original, edited by A");
  await a.page.click("#send");
  await seen(b.page, "original, edited by A", 5000);
  await item(b.page, "original, edited by A").locator(".meta", { hasText: "edited" }).waitFor({ timeout: 5000 });
  // A quote is of the message as it was when the reply was sent.
  assert.match((await item(b.page, "reply from B").locator(".quote").textContent()) ?? "", /: original from A$/);
  await b.page.screenshot({ path: `${ARTIFACTS}e2e-conversation-bob.png` });

  // A deletes it; B sees the tombstone in its place and an empty quote.
  const id = await item(a.page, "original, edited by A").getAttribute("data-id");
  await item(a.page, "original, edited by A").locator("button.delete").click();
  const tombstone = b.page.locator(`#messages li[data-id="${id}"].deleted`);
  await tombstone.waitFor({ timeout: 5000 });
  assert.equal(await tombstone.locator(".tombstone").textContent(), "This message was deleted.");
  assert.equal(await tombstone.locator("button").count(), 0, "no actions on a tombstone");
  assert.equal(await b.page.locator("#messages li").first().getAttribute("data-id"), id, "it keeps its place");
  await item(b.page, "reply from B").locator(".quote", { hasText: "(deleted message)" }).waitFor({ timeout: 5000 });

  // A posts twice in the other room: B's badge for it goes up (none for the room B reads).
  await a.page.click(`#rooms button[data-room="${other}"]`);
  await waitLive(a.page, other);
  await a.page.fill("#text", "elsewhere 1");
  await a.page.click("#send");
  await seen(a.page, "elsewhere 1", 5000);
  await a.page.fill("#text", "elsewhere 2");
  await a.page.click("#send");
  await seen(a.page, "elsewhere 2", 5000);
  await b.page.waitForFunction(
    (selector) => document.querySelector(selector)?.textContent === "2",
    `#rooms button[data-room="${other}"] .badge:not([hidden])`,
    { timeout: 15_000 },
  );
  assert.equal(await badge(b.page, room).isHidden(), true);
  assert.equal(await badge(a.page, other).isHidden(), true, "A's own posts are read");
  await b.page.screenshot({ path: `${ARTIFACTS}e2e-unread-bob.png` });

  // B opens it: the badge clears, and stays cleared (the mark is on the server) after B
  // goes back and reloads.
  await b.page.click(`#rooms button[data-room="${other}"]`);
  await waitLive(b.page, other);
  await seen(b.page, "elsewhere 2", 5000);
  assert.equal(await badge(b.page, other).isHidden(), true);
  await b.page.waitForTimeout(1000); // the mark is sent 250 ms after the messages show
  await b.page.click(`#rooms button[data-room="${room}"]`);
  await waitLive(b.page, room);
  await b.page.reload();
  await waitLive(b.page);
  assert.equal(await b.page.textContent("#room-title"), room);
  assert.equal(await badge(b.page, other).isHidden(), true, "read on the server");

  assert.deepEqual([...a.problems, ...b.problems], [], "no page errors");
});

test("presence and typing: B sees A online, sees A typing, and sees A leave", async () => {
  mkdirSync(ARTIFACTS, { recursive: true });
  const suffix = `${Date.now().toString(36)}${Math.random().toString(36).slice(2, 6)}`;
  const room = `here-${suffix}`;
  const other = `here-other-${suffix}`;
  const alice = `alice-${suffix}@example.com`;
  const bob = `bob-${suffix}@example.com`;
  const a = await userPage(alice);
  const b = await userPage(bob);
  for (const id of [other, room]) {
    await a.page.fill("#room-id", id);
    await a.page.click("#new-room button[type=submit]");
    await waitLive(a.page, id);
  }
  await b.page.reload();
  await b.page.click(`#rooms button[data-room="${room}"]`);
  await waitLive(b.page, room);

  // Both are listed online on both pages.
  const online = (page) => page.locator("#online li");
  for (const page of [a.page, b.page]) {
    for (const email of [alice, bob]) {
      await online(page).filter({ hasText: email }).waitFor({ timeout: 10_000 });
    }
  }

  // A types (key by key: the client sends at most one call a second); B sees it, A does not
  // see their own.
  const typingCalls = [];
  a.page.on("request", (r) => {
    if (r.url().endsWith("/typing")) typingCalls.push(r.url());
  });
  // Typing is never replayed: one sent while B's stream reconnects (every
  // STREAM_MAX_SECONDS here) is lost, so A keeps typing, as a person would.
  const typedUntilSeen = async (text) => {
    for (let attempt = 0; attempt < 6; attempt++) {
      await a.page.locator("#text").pressSequentially(text, { delay: 20 });
      const shown = await b.page
        .waitForFunction((who) => document.getElementById("typing")?.textContent === `${who} is typing…`, alice, {
          timeout: 1500,
        })
        .then(() => true, () => false);
      if (shown) return;
    }
    assert.fail("B never saw A typing");
  };
  const started = Date.now();
  await typedUntilSeen("hello there");
  assert.equal(await a.page.textContent("#typing"), "");
  const seconds = (Date.now() - started) / 1000;
  assert.ok(
    typingCalls.length >= 1 && typingCalls.length <= Math.ceil(seconds) + 1,
    `${typingCalls.length} typing calls in ${seconds} s`,
  );
  await b.page.screenshot({ path: `${ARTIFACTS}e2e-typing-bob.png` });
  // Sending the message clears it at once on B's side.
  await a.page.click("#send");
  await seen(b.page, "hello there", 5000);
  assert.equal(await b.page.textContent("#typing"), "");

  // A types again and stops: it hides by itself after expires_at (5 s).
  await a.page.waitForTimeout(1100);
  await typedUntilSeen("x");
  await b.page.waitForFunction(() => document.getElementById("typing")?.textContent === "", undefined, {
    timeout: 8000,
  });

  // A goes to the other room: after the 3 s debounce B sees A offline.
  await a.page.click(`#rooms button[data-room="${other}"]`);
  await waitLive(a.page, other);
  await online(b.page).filter({ hasText: alice }).waitFor({ state: "detached", timeout: 10_000 });
  assert.equal(await online(b.page).count(), 1);

  assert.deepEqual([...a.problems, ...b.problems], [], "no page errors");
});

/** A `width` × `height` RGB PNG (a gradient), made here. */
function gradientPng(width, height) {
  const crcTable = Array.from({ length: 256 }, (_, n) => {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    return c >>> 0;
  });
  const crc = (buf) => {
    let c = 0xffffffff;
    for (const b of buf) c = crcTable[(c ^ b) & 0xff] ^ (c >>> 8);
    return (c ^ 0xffffffff) >>> 0;
  };
  const chunk = (type, data) => {
    const length = Buffer.alloc(4);
    length.writeUInt32BE(data.length);
    const body = Buffer.concat([Buffer.from(type, "ascii"), data]);
    const sum = Buffer.alloc(4);
    sum.writeUInt32BE(crc(body));
    return Buffer.concat([length, body, sum]);
  };
  const header = Buffer.alloc(13);
  header.writeUInt32BE(width, 0);
  header.writeUInt32BE(height, 4);
  header.set([8, 2, 0, 0, 0], 8);
  const raw = Buffer.alloc((width * 3 + 1) * height);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) raw.set([x % 256, y % 256, 128], y * (width * 3 + 1) + 1 + x * 3);
  }
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk("IHDR", header),
    chunk("IDAT", deflateSync(raw)),
    chunk("IEND", Buffer.alloc(0)),
  ]);
}

/** Half a second of a 440 Hz tone as 8 kHz 16-bit mono WAV. */
function toneWav() {
  const rate = 8000;
  const samples = rate / 2;
  const wav = Buffer.alloc(44 + samples * 2);
  wav.write("RIFF", 0, "ascii");
  wav.writeUInt32LE(36 + samples * 2, 4);
  wav.write("WAVEfmt ", 8, "ascii");
  wav.writeUInt32LE(16, 16);
  wav.writeUInt16LE(1, 20);
  wav.writeUInt16LE(1, 22);
  wav.writeUInt32LE(rate, 24);
  wav.writeUInt32LE(rate * 2, 28);
  wav.writeUInt16LE(2, 32);
  wav.writeUInt16LE(16, 34);
  wav.write("data", 36, "ascii");
  wav.writeUInt32LE(samples * 2, 40);
  for (let i = 0; i < samples; i++) wav.writeInt16LE(Math.round(8000 * Math.sin((2 * Math.PI * 440 * i) / rate)), 44 + i * 2);
  return wav;
}

test("an image shows as a thumbnail at its final size, and a voice note plays inline", async () => {
  mkdirSync(ARTIFACTS, { recursive: true });
  const suffix = `${Date.now().toString(36)}${Math.random().toString(36).slice(2, 6)}`;
  const room = `media-${suffix}`;
  const a = await userPage(`alice-${suffix}@example.com`);
  const b = await userPage(`bob-${suffix}@example.com`);
  await a.page.fill("#room-id", room);
  await a.page.click("#new-room button[type=submit]");
  await waitLive(a.page, room);
  await b.page.reload();
  await b.page.click(`#rooms button[data-room="${room}"]`);
  await waitLive(b.page, room);

  // A 640 × 480 PNG: B gets its 320 × 240 WebP thumbnail in a 256 × 192 box, the box sized
  // before the thumbnail loads (width/height attributes), the placeholder behind it.
  await a.page.setInputFiles("#file", { name: "gradient.png", mimeType: "image/png", buffer: gradientPng(640, 480) });
  await a.page.fill("#text", "a photo");
  await a.page.click("#send");
  await seen(b.page, "a photo", 5000);
  const thumb = b.page.locator("#messages img.thumb");
  await thumb.waitFor({ timeout: 10_000 });
  assert.equal(await thumb.getAttribute("width"), "256");
  assert.equal(await thumb.getAttribute("height"), "192");
  assert.match(await thumb.evaluate((img) => img.style.backgroundImage), /^url\("data:image\/webp;base64,/);
  await b.page.waitForFunction(
    () => {
      const img = /** @type {HTMLImageElement | null} */ (document.querySelector("#messages img.thumb"));
      return img !== null && img.complete && img.naturalWidth > 0;
    },
    undefined,
    { timeout: 5000 },
  );
  const shown = await thumb.evaluate((img) => ({
    natural: [img.naturalWidth, img.naturalHeight],
    box: [img.getBoundingClientRect().width, img.getBoundingClientRect().height],
    src: img.currentSrc,
  }));
  assert.deepEqual(shown.natural, [320, 240]);
  assert.deepEqual(shown.box, [256, 192], "the box did not change when it loaded");
  assert.match(shown.src, /\.thumb\.webp/);
  // A's own page got the same through message.updated.
  await a.page.locator("#messages img.thumb").waitFor({ timeout: 10_000 });

  // A sends a voice note; B's page plays it inline (the player reads its duration).
  await a.page.setInputFiles("#file", { name: "hello.wav", mimeType: "audio/wav", buffer: toneWav() });
  await a.page.fill("#text", "a voice note");
  await a.page.click("#send");
  await seen(b.page, "a voice note", 5000);
  const duration = await b.page.waitForFunction(
    () => {
      const audio = /** @type {HTMLAudioElement | null} */ (document.querySelector("#messages audio"));
      return audio !== null && audio.readyState >= 1 && audio.duration;
    },
    undefined,
    { timeout: 10_000 },
  );
  assert.ok(Math.abs(Number(await duration.jsonValue()) - 0.5) < 0.05);
  await b.page.screenshot({ path: `${ARTIFACTS}e2e-media-bob.png` });

  assert.deepEqual([...a.problems, ...b.problems], [], "no page errors");
});
