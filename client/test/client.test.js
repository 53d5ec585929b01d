// The client against a running dev server (CHAT_API_URL, default http://localhost:3000).
import assert from "node:assert/strict";
import { describe, test } from "node:test";

import { ChatApiError, createClient } from "../chat-client.js";
import { API, FakeEventSource, PNG, signedIn, unique, until } from "./helpers.js";

describe("rooms", () => {
  test("createRoom then listRooms shows it, owned by the caller", async () => {
    const { client, email } = await signedIn();
    const id = unique("room");
    const room = await client.createRoom({ id, name: "Test room" });
    assert.equal(room.id, id);
    assert.equal(room.owner, email);
    assert.equal(room.visibility, "public");
    assert.equal(room.last_seq, 0);
    const rooms = await client.listRooms();
    assert.ok(rooms.some((r) => r.id === id));
  });

  test("a taken id is a ChatApiError with status and code", async () => {
    const { client } = await signedIn();
    const id = unique("room");
    await client.createRoom({ id });
    await assert.rejects(client.createRoom({ id }), (err) => {
      assert.ok(err instanceof ChatApiError);
      assert.equal(err.status, 409);
      assert.equal(err.code, "room_exists");
      assert.match(err.message, /already exists/);
      return true;
    });
  });

  test("createRoom without an id gets an unguessable one", async () => {
    const { client } = await signedIn();
    const room = await client.createRoom({ name: "Plans", visibility: "private" });
    assert.match(room.id, /^[A-Za-z0-9_-]{22}$/);
    assert.equal(room.name, "Plans");
    assert.equal(room.visibility, "private");
    const other = await client.createRoom();
    assert.match(other.id, /^[A-Za-z0-9_-]{22}$/);
    assert.notEqual(other.id, room.id);
  });

    test("an unknown room is 404 room_not_found", async () => {
    const { client } = await signedIn();
    await assert.rejects(client.listMessages(unique("missing")), { status: 404, code: "room_not_found" });
  });
});

describe("messages", () => {
  test("post, then list with before/after paging", async () => {
    const { client, email } = await signedIn();
    const room = unique("room");
    await client.createRoom({ id: room });
    for (let i = 1; i <= 5; i++) {
      const message = await client.postMessage(room, { content: `m${i}` });
      assert.equal(message.seq, i);
      assert.equal(message.user_email, email);
      assert.match(message.client_id ?? "", /^[0-9a-f-]{36}$/, "a client_id is generated");
    }
    const newest = await client.listMessages(room, { limit: 2 });
    assert.deepEqual(newest.messages.map((m) => m.content), ["m4", "m5"]);
    assert.equal(newest.has_more, true);
    const older = await client.listMessages(room, { before: newest.messages[0].seq, limit: 2 });
    assert.deepEqual(older.messages.map((m) => m.seq), [2, 3]);
    assert.equal(older.has_more, true);
    const oldest = await client.listMessages(room, { before: 2, limit: 2 });
    assert.deepEqual(oldest.messages.map((m) => m.seq), [1]);
    assert.equal(oldest.has_more, false);
    const after = await client.listMessages(room, { after: 3 });
    assert.deepEqual(after.messages.map((m) => m.seq), [4, 5]);
    assert.equal(after.has_more, false);
    await assert.rejects(client.listMessages(room, { limit: 0 }), { status: 400, code: "invalid_query" });
  });

  test("the same clientId twice stores one message", async () => {
    const { client } = await signedIn();
    const room = unique("room");
    await client.createRoom({ id: room });
    const clientId = crypto.randomUUID();
    const first = await client.postMessage(room, { content: "once", clientId });
    const again = await client.postMessage(room, { content: "once", clientId });
    assert.equal(again.id, first.id);
    assert.equal((await client.listMessages(room)).messages.length, 1);
  });

  test("a send whose answer is lost is retried and stored once", async () => {
    let calls = 0;
    // The first POST reaches the server, but its answer is "lost" on the way back.
    /** @type {typeof fetch} */
    const flaky = async (input, init) => {
      const response = await fetch(input, init);
      if (init?.method === "POST" && String(input).endsWith("/messages") && ++calls === 1) {
        throw new TypeError("fetch failed");
      }
      return response;
    };
    const { client } = await signedIn({ fetch: flaky });
    const room = unique("room");
    await client.createRoom({ id: room });
    const message = await client.postMessage(room, { content: "hello" });
    assert.equal(calls, 2, "retried once");
    assert.equal(message.seq, 1);
    const { messages } = await client.listMessages(room);
    assert.deepEqual(messages.map((m) => m.content), ["hello"], "stored once");
  });

  test("503 and 429 are retried, honouring Retry-After", async () => {
    const answers = [
      new Response(JSON.stringify({ error: { code: "database_unavailable", message: "Down." } }), {
        status: 503,
        headers: { "retry-after": "0" },
      }),
      new Response(JSON.stringify({ error: { code: "rate_limited", message: "Slow down." } }), {
        status: 429,
        headers: { "retry-after": "1" },
      }),
    ];
    /** @type {typeof fetch} */
    const busy = async (input, init) =>
      init?.method === "POST" && String(input).endsWith("/messages") && answers.length
        ? /** @type {Response} */ (answers.shift())
        : fetch(input, init);
    const { client } = await signedIn({ fetch: busy });
    const room = unique("room");
    await client.createRoom({ id: room });
    const started = Date.now();
    const message = await client.postMessage(room, { content: "eventually" });
    assert.ok(Date.now() - started >= 1000, "waited Retry-After: 1");
    assert.equal(message.content, "eventually");
  });

  test("other errors are not retried", async () => {
    const { client } = await signedIn();
    const room = unique("room");
    await client.createRoom({ id: room });
    await assert.rejects(client.postMessage(room, { content: " " }), { status: 400, code: "invalid_field" });
  });
});

describe("uploads", () => {
  test("uploadFile presigns, PUTs with progress (fetch in Node), and the id attaches", async () => {
    const { client } = await signedIn();
    const room = unique("room");
    await client.createRoom({ id: room });
    /** @type {import("../chat-client.js").UploadProgress[]} */
    const progress = [];
    const id = await client.uploadFile(room, new Blob([PNG], { type: "image/png" }), {
      fileName: "dot.png",
      onProgress: (p) => progress.push(p),
    });
    assert.match(id, /^[0-9a-f-]{36}$/);
    assert.deepEqual(progress.at(0), { loaded: 0, total: PNG.length });
    assert.deepEqual(progress.at(-1), { loaded: PNG.length, total: PNG.length });
    const message = await client.postMessage(room, { content: "", fileIds: [id] });
    assert.equal(message.files.length, 1);
    const [file] = message.files;
    assert.equal(file.id, id);
    assert.equal(file.file_name, "dot.png");
    assert.equal(file.content_type, "image/png");
    assert.equal(file.size, PNG.length);
    const download = await fetch(file.url);
    assert.equal(download.status, 200);
    assert.deepEqual(Buffer.from(await download.arrayBuffer()), PNG);
  });

  test("a refused type is a ChatApiError before anything is sent", async () => {
    const { client } = await signedIn();
    const room = unique("room");
    await client.createRoom({ id: room });
    await assert.rejects(
      client.uploadFile(room, new Blob(["<p>hi</p>"], { type: "text/html" }), { fileName: "x.html" }),
      { status: 400, code: "content_type_not_allowed" },
    );
  });
});

describe("members", () => {
  test("the owner adds, lists and removes members of a private room", async () => {
    const owner = await signedIn();
    const member = await signedIn();
    const room = unique("room");
    await owner.client.createRoom({ id: room, visibility: "private" });
    await assert.rejects(member.client.listMessages(room), { status: 404, code: "room_not_found" });
    const added = await owner.client.addMember(room, member.email);
    assert.equal(added.email, member.email);
    const list = await owner.client.listMembers(room);
    assert.equal(list.owner, owner.email);
    assert.deepEqual(list.members.map((m) => m.email), [member.email]);
    assert.deepEqual((await member.client.listMessages(room)).messages, []);
    await assert.rejects(member.client.listMembers(room), { status: 403, code: "not_room_owner" });
    await owner.client.removeMember(room, member.email);
    assert.deepEqual((await owner.client.listMembers(room)).members, []);
    await assert.rejects(member.client.listMessages(room), { status: 404 });
  });
});

describe("subscribe", () => {
  test("live messages arrive once, in order, after lastSeq", async () => {
    const { client } = await signedIn();
    const room = unique("room");
    await client.createRoom({ id: room });
    await client.postMessage(room, { content: "before" });
    /** @type {number[]} */
    const seen = [];
    let opened = 0;
    const subscription = client.subscribe(room, {
      lastSeq: 1,
      onOpen: () => opened++,
      onMessage: (m) => seen.push(m.seq),
    });
    try {
      await until(() => opened > 0, 5000, "the stream to open");
      await client.postMessage(room, { content: "a" });
      await client.postMessage(room, { content: "b" });
      await until(() => seen.length >= 2, 5000, "two messages");
      assert.deepEqual(seen, [2, 3]);
      assert.equal(subscription.lastSeq, 3);
    } finally {
      subscription.close();
    }
  });

  test("the stream survives the server ending it (STREAM_MAX_SECONDS)", { skip: !process.env.STREAM_MAX_SECONDS && "set STREAM_MAX_SECONDS (as tests/e2e/run.sh does) to the dev server's" }, async () => {
    const maxMs = Number(process.env.STREAM_MAX_SECONDS) * 1000;
    const { client } = await signedIn();
    const room = unique("room");
    await client.createRoom({ id: room });
    /** @type {number[]} */
    const seen = [];
    let opened = 0;
    const subscription = client.subscribe(room, {
      lastSeq: 0,
      onOpen: () => opened++,
      onMessage: (m) => seen.push(m.seq),
    });
    try {
      await until(() => opened > 0, 5000, "the stream to open");
      await client.postMessage(room, { content: "first" });
      // Past the server's limit (+10 %), then a reconnect.
      await until(() => opened >= 2, maxMs * 1.1 + 5000, "a reconnect");
      await client.postMessage(room, { content: "after the reconnect" });
      await until(() => seen.length >= 2, 5000, "the message after the reconnect");
      assert.deepEqual(seen, [1, 2]);
    } finally {
      subscription.close();
    }
  });
});

describe("typing and presence", () => {
  test("a subscriber hears another user come online, type and go offline; presence lists both", async () => {
    const ana = await signedIn();
    const bo = await signedIn();
    const room = unique("room");
    await ana.client.createRoom({ id: room });
    /** @type {import("../chat-client.js").PresenceEvent[]} */
    const heard = [];
    /** @type {import("../chat-client.js").TypingEvent[]} */
    const typing = [];
    let opened = 0;
    const watching = bo.client.subscribe(room, {
      onOpen: () => opened++,
      onPresence: (p) => heard.push(p),
      onTyping: (t) => typing.push(t),
    });
    let anaOpened = 0;
    /** @type {import("../chat-client.js").PresenceEvent[]} */
    const anaHeard = [];
    await until(() => opened > 0, 5000, "Bo's stream to open");
    const ana_ = ana.client.subscribe(room, {
      onOpen: () => anaOpened++,
      onPresence: (p) => anaHeard.push(p),
    });
    try {
      await until(() => anaOpened > 0, 5000, "Ana's stream to open");
      // Ana's stream opens with who was there already.
      await until(() => anaHeard.length > 0, 5000, "Ana's opening list");
      assert.deepEqual(anaHeard[0], { user_email: bo.email, status: "online" });
      await until(
        () => heard.some((p) => p.user_email === ana.email && p.status === "online"),
        5000,
        "Ana online",
      );
      // The list is as of each instance's last heartbeat: Ana shows within one.
      /** @type {string[]} */
      let listed = [];
      const deadline = Date.now() + 20_000;
      while (Date.now() < deadline) {
        listed = (await bo.client.presence(room)).online.map((o) => o.user_email).sort();
        if (listed.length === 2) break;
        await new Promise((resolve) => setTimeout(resolve, 200));
      }
      assert.deepEqual(listed, [ana.email, bo.email].sort());
      assert.equal(await ana.client.sendTyping(room), true);
      assert.equal(await ana.client.sendTyping(room), false, "throttled client-side");
      // Typing is never replayed: one sent while Bo's stream reconnects (every
      // STREAM_MAX_SECONDS under run.sh) is lost, so Ana keeps typing, as a person would.
      for (let i = 0; i < 6 && !typing.some((t) => t.user_email === ana.email); i++) {
        await until(() => typing.some((t) => t.user_email === ana.email), 1100, "Ana typing").catch(() => {});
        await ana.client.sendTyping(room);
      }
      assert.ok(typing.some((t) => t.user_email === ana.email), "Bo heard Ana typing");
      assert.ok(Date.parse(typing[0].expires_at) > Date.now());
      ana_.close();
      // Offline after the 3 s debounce; an event sent while Bo's stream reconnects is lost
      // (never replayed), and then the list (as of the next heartbeat) says it.
      const offline = () => heard.some((p) => p.user_email === ana.email && p.status === "offline");
      const offBy = Date.now() + 30_000;
      while (!offline() && Date.now() < offBy) {
        const { online } = await bo.client.presence(room);
        if (!online.some((o) => o.user_email === ana.email)) break;
        await new Promise((resolve) => setTimeout(resolve, 500));
      }
      assert.ok(Date.now() < offBy, "Ana went offline");
    } finally {
      watching.close();
      ana_.close();
    }
  });

  test("an outsider's presence and typing are a 404", async () => {
    const owner = await signedIn();
    const outsider = await signedIn();
    const room = unique("room");
    await owner.client.createRoom({ id: room, visibility: "private" });
    await assert.rejects(outsider.client.presence(room), { status: 404, code: "room_not_found" });
    await assert.rejects(outsider.client.sendTyping(room), { status: 404, code: "room_not_found" });
  });
});

describe("sendTyping, against a scripted fetch", () => {
  test("calls the API at most once a second per room", async () => {
    /** @type {string[]} */
    const calls = [];
    const client = createClient({
      fetch: async (input, init) => {
        calls.push(`${init?.method} ${input}`);
        return new Response(null, { status: 204 });
      },
    });
    const sent = [];
    for (let i = 0; i < 5; i++) sent.push(await client.sendTyping("general"));
    sent.push(await client.sendTyping("other"));
    assert.deepEqual(sent, [true, false, false, false, false, true]);
    assert.deepEqual(calls, ["POST /api/rooms/general/typing", "POST /api/rooms/other/typing"]);
    await new Promise((resolve) => setTimeout(resolve, 1050));
    assert.equal(await client.sendTyping("general"), true);
    assert.equal(calls.length, 3);
  });
});

describe("subscribe, against a scripted EventSource", () => {
  /**
   * A fetch for the client's probes of the stream URL: records each and answers `answer()`.
   * @param {() => Response | Promise<Response>} answer
   */
  function probes(answer) {
    /** @type {{ url: string, signal: AbortSignal | null | undefined }[]} */
    const calls = [];
    /** @type {typeof globalThis.fetch} */
    const probe = async (input, init) => {
      calls.push({ url: String(input), signal: init?.signal });
      return answer();
    };
    return { calls, fetch: probe };
  }

  test("dedupes by seq, handles reset, and reopens after a refusal with the last seq", async () => {
    FakeEventSource.opened = [];
    const client = createClient({
      baseUrl: "http://api.test",
      getToken: () => "tok",
      EventSource: FakeEventSource,
      fetch: probes(() => new Response("{}", { status: 503 })).fetch,
      reconnectDelayMs: { min: 10, max: 50 },
    });
    /** @type {number[]} */
    const seen = [];
    /** @type {number[]} */
    const resets = [];
    /** @type {string[]} */
    const errors = [];
    const subscription = client.subscribe("general", {
      lastSeq: 2,
      onMessage: (m) => seen.push(m.seq),
      onReset: ({ lastSeq }) => resets.push(lastSeq),
      onError: (err) => errors.push(err.code),
    });
    await until(() => FakeEventSource.opened.length === 1, 1000, "the first EventSource");
    const first = FakeEventSource.opened[0];
    assert.equal(first.url.pathname, "/api/rooms/general/stream");
    assert.equal(first.url.searchParams.get("access_token"), "tok");
    assert.equal(first.url.searchParams.get("after"), "2");
    first.open();
    for (const seq of [2, 3, 3, 1, 4]) first.emit("message", { seq });
    assert.deepEqual(seen, [3, 4]);
    first.emit("reset", { last_seq: 10 });
    assert.deepEqual(resets, [10]);
    first.emit("message", { seq: 9 });
    first.emit("message", { seq: 11 });
    assert.deepEqual(seen, [3, 4, 11]);

    first.refuse();
    await until(() => FakeEventSource.opened.length === 2, 1000, "a new EventSource");
    assert.deepEqual(errors, ["http_503"], "the probe's answer");
    const second = FakeEventSource.opened[1];
    assert.equal(second.url.searchParams.get("after"), "11");
    assert.ok(first.closed);
    second.emit("message", { seq: 11 });
    second.emit("message", { seq: 12 });
    assert.deepEqual(seen, [3, 4, 11, 12]);
    assert.equal(subscription.lastSeq, 12);

    subscription.close();
    assert.ok(second.closed);
    second.refuse();
    await new Promise((resolve) => setTimeout(resolve, 100));
    assert.equal(FakeEventSource.opened.length, 2, "nothing reopens after close()");
  });

  test("presence.crowded reaches onPresenceCrowded, per-user presence onPresence", async () => {
    FakeEventSource.opened = [];
    const client = createClient({ baseUrl: "http://api.test", getToken: () => "tok", EventSource: FakeEventSource });
    /** @type {unknown[]} */
    const heard = [];
    const subscription = client.subscribe("general", {
      onPresence: (p) => heard.push(["presence", p]),
      onPresenceCrowded: (c) => heard.push(["crowded", c]),
    });
    await until(() => FakeEventSource.opened.length === 1, 1000, "the EventSource");
    const es = FakeEventSource.opened[0];
    es.open();
    es.emit("presence", { user_email: "a@example.com", status: "online" });
    es.emit("presence.crowded", { crowded: true, online_count: 140, limit: 100 });
    es.emit("presence.crowded", { crowded: false, online_count: 90, limit: 100 });
    assert.deepEqual(heard, [
      ["presence", { user_email: "a@example.com", status: "online" }],
      ["crowded", { crowded: true, online_count: 140, limit: 100 }],
      ["crowded", { crowded: false, online_count: 90, limit: 100 }],
    ]);
    subscription.close();
  });

  test("a refused stream is probed with fetch and reopened no sooner than its Retry-After", async () => {
    FakeEventSource.opened = [];
    const refused = JSON.stringify({ error: { code: "too_many_streams_for_user", message: "Too many." } });
    const { calls, fetch } = probes(
      () => new Response(refused, { status: 429, headers: { "retry-after": "1", "content-type": "application/json" } }),
    );
    const client = createClient({
      baseUrl: "http://api.test",
      getToken: () => "tok",
      EventSource: FakeEventSource,
      fetch,
      reconnectDelayMs: { min: 10, max: 50 },
    });
    /** @type {{ error: ChatApiError, delay: number }[]} */
    const errors = [];
    const subscription = client.subscribe("general", {
      lastSeq: 7,
      onMessage: () => {},
      onError: (error, delay) => errors.push({ error, delay }),
    });
    try {
      await until(() => FakeEventSource.opened.length === 1, 1000, "the first EventSource");
      const first = FakeEventSource.opened[0];
      const refusedAt = Date.now();
      first.refuse();
      await until(() => errors.length === 1, 1000, "the probe");
      assert.equal(calls.length, 1);
      assert.equal(calls[0].url, first.url.toString(), "the probe asks the stream's own URL");
      const [{ error, delay }] = errors;
      assert.ok(error instanceof ChatApiError);
      assert.equal(error.status, 429);
      assert.equal(error.code, "too_many_streams_for_user");
      assert.equal(error.retryAfter, 1);
      assert.ok(delay >= 1000 && delay <= 1250, `Retry-After 1 s, spread by up to 25 %: ${delay}`);
      await new Promise((resolve) => setTimeout(resolve, 800));
      assert.equal(FakeEventSource.opened.length, 1, "not reopened before Retry-After");
      await until(() => FakeEventSource.opened.length === 2, 2000, "the reopen");
      assert.ok(Date.now() - refusedAt >= 1000);
      assert.equal(FakeEventSource.opened[1].url.searchParams.get("after"), "7");
    } finally {
      subscription.close();
    }
  });

  test("failures before any open back off exponentially with jitter", async () => {
    /** Fails as a network error does: still CONNECTING, never opened. */
    class Unreachable extends FakeEventSource {
      /** @param {string} url */
      constructor(url) {
        super(url);
        queueMicrotask(() => this.onerror?.(new Event("error")));
      }
    }
    FakeEventSource.opened = [];
    const { calls, fetch } = probes(() => {
      throw new TypeError("fetch failed");
    });
    const client = createClient({
      baseUrl: "http://api.test",
      getToken: () => "tok",
      EventSource: Unreachable,
      fetch,
      reconnectDelayMs: { min: 40, max: 160 },
    });
    /** @type {number[]} */
    const delays = [];
    /** @type {string[]} */
    const codes = [];
    const subscription = client.subscribe("general", {
      onMessage: () => {},
      onError: (error, delay) => {
        delays.push(delay);
        codes.push(`${error.status} ${error.code}`);
      },
    });
    try {
      await until(() => delays.length >= 5, 3000, "five failures");
    } finally {
      subscription.close();
    }
    const ceilings = [40, 80, 160, 160, 160];
    ceilings.forEach((ceiling, i) =>
      assert.ok(delays[i] >= ceiling / 2 && delays[i] <= ceiling, `delay ${i + 1}: ${delays[i]} in [${ceiling / 2}, ${ceiling}]`),
    );
    assert.ok(new Set(delays.slice(2)).size > 1, `jittered: ${delays}`);
    assert.deepEqual(codes.slice(0, 2), ["0 stream_closed", "0 stream_closed"]);
    assert.ok(FakeEventSource.opened.slice(0, 5).every((es) => es.closed), "each given up on, not left retrying");
    assert.ok(calls.length >= 5);
  });

  test("a probe that finds the stream open cuts it off at once", async () => {
    FakeEventSource.opened = [];
    const { calls, fetch } = probes(
      () => new Response(new ReadableStream({ start() {} }), { status: 200, headers: { "content-type": "text/event-stream" } }),
    );
    const client = createClient({
      baseUrl: "http://api.test",
      getToken: () => "tok",
      EventSource: FakeEventSource,
      fetch,
      reconnectDelayMs: { min: 10, max: 50 },
    });
    const subscription = client.subscribe("general", { onMessage: () => {} });
    try {
      await until(() => FakeEventSource.opened.length === 1, 1000, "the first EventSource");
      FakeEventSource.opened[0].refuse();
      await until(() => FakeEventSource.opened.length === 2, 1000, "the reopen");
      assert.equal(calls.length, 1);
      assert.equal(calls[0].signal?.aborted, true, "the probe's stream was aborted");
    } finally {
      subscription.close();
    }
  });
});

describe("subscribe, refused by the server", () => {
  test("a stream over the per-user cap is retried after the server's Retry-After", async () => {
    const { client } = await signedIn();
    const room = unique("room");
    await client.createRoom({ id: room });
    // The dev server's STREAM_MAX_PER_USER (10 unless set).
    const cap = Number(process.env.STREAM_MAX_PER_USER ?? 10);
    let opened = 0;
    const held = Array.from({ length: cap }, () =>
      client.subscribe(room, { onMessage: () => {}, onOpen: () => opened++ }),
    );
    /** @type {{ error: ChatApiError, delay: number }[]} */
    const errors = [];
    let extraOpened = 0;
    /** @type {{ close(): void } | undefined} */
    let extra;
    try {
      await until(() => opened >= cap, 10000, `${cap} streams to open`);
      extra = client.subscribe(room, {
        onMessage: () => {},
        onOpen: () => extraOpened++,
        onError: (error, delay) => errors.push({ error, delay }),
      });
      await until(() => errors.length >= 1, 10000, "the refusal");
      const [{ error, delay }] = errors;
      assert.equal(error.status, 429);
      assert.equal(error.code, "too_many_streams_for_user");
      assert.ok(error.retryAfter != null && error.retryAfter >= 1, `Retry-After: ${error.retryAfter}`);
      assert.ok(delay >= error.retryAfter * 1000, `waits at least Retry-After: ${delay}`);
      assert.equal(extraOpened, 0);
    } finally {
      extra?.close();
      for (const subscription of held) subscription.close();
    }
  });
});

test("the dev server answers at CHAT_API_URL", async () => {
  const response = await fetch(`${API}/api/health`);
  assert.equal(response.status, 200);
});
