// Edits, deletes, reactions, replies and read marks: the calls against a scripted fetch,
// the subscription's event handling against a scripted EventSource, and both against the
// dev server (CHAT_API_URL).
import assert from "node:assert/strict";
import { describe, test } from "node:test";

import { ChatApiError, createClient } from "../chat-client.js";
import { FakeEventSource, signedIn, unique, until } from "./helpers.js";

/**
 * A client whose fetch records each call and answers from `answers` (a function of the
 * call), by default 200 `{}`.
 * @param {(call: { method: string, url: URL, body: any }) => Response | undefined} [answer]
 */
function scripted(answer = () => undefined) {
  /** @type {{ method: string, url: URL, body: any, headers: Record<string, string> }[]} */
  const calls = [];
  /** @type {typeof fetch} */
  const fetchImpl = async (input, init = {}) => {
    const call = {
      method: init.method ?? "GET",
      url: new URL(String(input)),
      body: typeof init.body === "string" ? JSON.parse(init.body) : undefined,
      headers: /** @type {Record<string, string>} */ (init.headers ?? {}),
    };
    calls.push(call);
    return answer(call) ?? new Response(JSON.stringify({ ok: true, call: call.method }), { status: 200 });
  };
  const client = createClient({ baseUrl: "http://api.test/", getToken: () => "tok", fetch: fetchImpl });
  return { client, calls };
}

const ID = "0190d1b2-3c4d-7e5f-8a9b-0c1d2e3f4a5b";

describe("the conversation calls, against a scripted fetch", () => {
  test("each call's method, path and body", async () => {
    const { client, calls } = scripted();
    await client.editMessage("general", ID, "fixed");
    await client.deleteMessage("general", ID);
    await client.addReaction("general", ID, "👍");
    await client.removeReaction("general", ID, ":+1:");
    await client.markRead("general", 41);
    await client.listReplies("general", ID, { limit: 20, after: 7 });
    await client.listReplies("general", ID);
    const seen = calls.map((c) => [c.method, c.url.pathname + c.url.search, c.body]);
    assert.deepEqual(seen, [
      ["PATCH", `/api/rooms/general/messages/${ID}`, { content: "fixed" }],
      ["DELETE", `/api/rooms/general/messages/${ID}`, undefined],
      ["PUT", `/api/rooms/general/messages/${ID}/reactions/%F0%9F%91%8D`, undefined],
      ["DELETE", `/api/rooms/general/messages/${ID}/reactions/%3A%2B1%3A`, undefined],
      ["PUT", "/api/rooms/general/read", { seq: 41 }],
      ["GET", `/api/rooms/general/messages/${ID}/replies?limit=20&after=7`, undefined],
      ["GET", `/api/rooms/general/messages/${ID}/replies`, undefined],
    ]);
    for (const call of calls) assert.equal(call.headers.authorization, "Bearer tok");
    assert.equal(calls[0].headers["content-type"], "application/json");
  });

  test("emoji made of several code points, and room ids and message ids, are percent-encoded", async () => {
    const { client, calls } = scripted();
    const family = "👩‍👩‍👧"; // a ZWJ sequence: one grapheme cluster, five code points
    await client.addReaction("a b", "x/y", family);
    await client.addReaction("general", ID, "❤️"); // with VARIATION SELECTOR-16
    assert.equal(
      calls[0].url.pathname,
      `/api/rooms/a%20b/messages/x%2Fy/reactions/${encodeURIComponent(family)}`,
    );
    assert.equal(decodeURIComponent(calls[0].url.pathname.split("/").at(-1) ?? ""), family);
    assert.equal(calls[1].url.pathname.split("/").at(-1), "%E2%9D%A4%EF%B8%8F");
  });

  test("postMessage sends reply_to (replyTo or reply_to), and nothing when absent", async () => {
    const { client, calls } = scripted(() => new Response("{}", { status: 201 }));
    await client.postMessage("general", { content: "re", replyTo: ID });
    await client.postMessage("general", { content: "re", reply_to: ID });
    await client.postMessage("general", { content: "plain" });
    assert.equal(calls[0].body.reply_to, ID);
    assert.equal(calls[1].body.reply_to, ID);
    assert.equal("reply_to" in calls[2].body, false);
    assert.match(calls[0].body.client_id, /^[0-9a-f-]{36}$/);
  });

  test("the idempotent writes are retried on 503 and 429; other errors are not", async () => {
    let refusals = 2;
    const { client, calls } = scripted((call) => {
      if (call.method === "PUT" && refusals > 0) {
        refusals -= 1;
        return new Response(JSON.stringify({ error: { code: "rate_limited", message: "Slow down." } }), {
          status: 429,
          headers: { "retry-after": "0" },
        });
      }
      if (call.method === "PATCH") {
        return new Response(JSON.stringify({ error: { code: "not_message_author", message: "Not yours." } }), {
          status: 403,
        });
      }
      return undefined;
    });
    await client.addReaction("general", ID, "🎉");
    assert.equal(calls.length, 3, "two 429s, then the answer");
    await assert.rejects(client.editMessage("general", ID, "x"), (err) => {
      assert.ok(err instanceof ChatApiError);
      assert.equal(err.status, 403);
      assert.equal(err.code, "not_message_author");
      return true;
    });
    assert.equal(calls.length, 4, "a 403 is not retried");
    refusals = 5;
    await assert.rejects(client.markRead("general", 1, { attempts: 2 }), { status: 429, code: "rate_limited" });
    assert.equal(calls.length, 6, "attempts bounds the tries");
  });
});

/**
 * A Message with `seq`, as the stream would carry it.
 * @param {number} seq
 * @param {Partial<import("../chat-client.js").Message>} [fields]
 */
const msg = (seq, fields = {}) => ({ id: `m${seq}`, seq, content: `c${seq}`, ...fields });

describe("subscribe: event ids and the new events, against a scripted EventSource", () => {
  /** @param {Partial<import("../chat-client.js").SubscribeOptions>} options */
  async function subscribed(options) {
    FakeEventSource.opened = [];
    const client = createClient({
      baseUrl: "http://api.test",
      getToken: () => "tok",
      EventSource: FakeEventSource,
      reconnectDelayMs: { min: 10, max: 50 },
    });
    /** @type {string[]} */
    const log = [];
    const subscription = client.subscribe("general", {
      onMessage: (m) => log.push(`new ${m.seq} ${m.content}`),
      onUpdate: (m) => log.push(`update ${m.seq} ${m.content}`),
      onDelete: (m) => log.push(`delete ${m.seq}`),
      onRead: (r) => log.push(`read ${r.room_id} ${r.last_read_seq}`),
      onReset: (r) => log.push(`reset ${r.lastSeq} ${r.lastEventId}`),
      ...options,
    });
    await until(() => FakeEventSource.opened.length === 1, 1000, "the EventSource");
    const es = FakeEventSource.opened[0];
    es.open();
    return { subscription, es, log };
  }

  test("resumes and dedupes by event id, not seq; updates and deletes reach their callbacks", async () => {
    const { subscription, es, log } = await subscribed({ lastSeq: 2 });
    assert.equal(es.url.searchParams.get("after"), "2", "a seq is a valid first resume point");
    es.emit("message", msg(3), 5);
    es.emit("message.updated", msg(3, { content: "edited" }), 6);
    es.emit("message.updated", msg(1, { content: "old, edited" }), 7);
    es.emit("message.updated", msg(3, { content: "edited" }), 6); // a repeat, by id
    es.emit("message", msg(3), 5); // a repeat
    es.emit("message.deleted", msg(2, { content: "" }), 8);
    es.emit("message", msg(4), 9);
    assert.deepEqual(log, ["new 3 c3", "update 3 edited", "update 1 old, edited", "delete 2", "new 4 c4"]);
    assert.equal(subscription.lastEventId, 9);
    assert.equal(subscription.lastSeq, 4);
    subscription.close();
  });

  test("a read event has no id: it never moves the resume point, and reconnects resume after the last event id", async () => {
    const { subscription, es, log } = await subscribed({ lastSeq: 0 });
    es.emit("message", msg(1), 3);
    es.emit("read", { room_id: "other", last_read_seq: 12 }); // carries the buffer's id, 3
    es.emit("read", { room_id: "general", last_read_seq: 1 });
    assert.equal(subscription.lastEventId, 3);
    es.emit("message.updated", msg(1, { content: "e" }), 4);
    assert.deepEqual(log, ["new 1 c1", "read other 12", "read general 1", "update 1 e"]);

    es.refuse();
    await until(() => FakeEventSource.opened.length === 2, 1000, "a new EventSource");
    const again = FakeEventSource.opened[1];
    assert.equal(again.url.searchParams.get("after"), "4", "the event id, not the seq (1)");
    again.open();
    again.emit("message.updated", msg(1, { content: "e" }), 4); // already had
    again.emit("message", msg(2), 5);
    assert.deepEqual(log.slice(4), ["new 2 c2"]);
    subscription.close();
  });

  test("message and message.updated are an upsert: a known seq updates, an unknown one above lastSeq is new", async () => {
    const { subscription, es, log } = await subscribed({ lastSeq: 10 });
    // Resuming after a seq can repeat changes to messages the caller listed: updates.
    es.emit("message", msg(9), 11);
    // A post and its edit, collapsed into one message.updated: the first sight.
    es.emit("message.updated", msg(12, { content: "posted, then edited" }), 14);
    // An older post collapsed with its edit arrives after a newer message: still new.
    es.emit("message", msg(11, { content: "late" }), 15);
    es.emit("message.updated", msg(11, { content: "later" }), 16);
    // A post and its delete collapsed: only the tombstone.
    es.emit("message.deleted", msg(13, { content: "" }), 18);
    es.emit("message", msg(14), 19);
    assert.deepEqual(log, [
      "update 9 c9",
      "new 12 posted, then edited",
      "new 11 late",
      "update 11 later",
      "delete 13",
      "new 14 c14",
    ]);
    assert.equal(subscription.lastSeq, 14);
    subscription.close();
  });

  test("without lastSeq, a message.updated is a change to a listed message; lastEventId resumes exactly", async () => {
    const { subscription, es, log } = await subscribed({ lastEventId: 40 });
    assert.equal(es.url.searchParams.get("after"), "40");
    es.emit("message.updated", msg(3, { content: "old one edited" }), 41);
    es.emit("message", msg(20), 42);
    es.emit("message.updated", msg(20, { content: "x" }), 43);
    assert.deepEqual(log, ["update 3 old one edited", "new 20 c20", "update 20 x"]);
    subscription.close();
  });

  test("reset: the stream continues after its event id, and messages up to its seq count as had", async () => {
    const { subscription, es, log } = await subscribed({ lastSeq: 1 });
    es.emit("message", msg(2), 2);
    es.emit("reset", { last_seq: 50, last_event_id: 80 }, 80);
    assert.equal(subscription.lastEventId, 80);
    es.emit("message", msg(50), 79); // before the reset point: dropped
    es.emit("message.updated", msg(50, { content: "e" }), 81);
    es.emit("message", msg(51), 82);
    assert.deepEqual(log, ["new 2 c2", "reset 50 80", "update 50 e", "new 51 c51"]);
    assert.equal(subscription.lastSeq, 51);
    subscription.close();
  });

  test("a reset without last_event_id (an older server) resumes after its id line", async () => {
    const { subscription, es, log } = await subscribed({ lastSeq: 0 });
    es.emit("reset", { last_seq: 7 }, 7);
    assert.deepEqual(log, ["reset 7 7"]);
    assert.equal(subscription.lastEventId, 7);
    subscription.close();
  });

  test("onMessage alone still works (the callbacks are optional)", async () => {
    FakeEventSource.opened = [];
    const client = createClient({ baseUrl: "http://api.test", EventSource: FakeEventSource });
    /** @type {number[]} */
    const seen = [];
    const subscription = client.subscribe("general", { lastSeq: 0, onMessage: (m) => seen.push(m.seq) });
    await until(() => FakeEventSource.opened.length === 1, 1000, "the EventSource");
    const es = FakeEventSource.opened[0];
    es.emit("message", msg(1), 1);
    es.emit("message.updated", msg(1), 2);
    es.emit("message.deleted", msg(1), 3);
    es.emit("read", { room_id: "general", last_read_seq: 1 });
    es.emit("message", msg(2), 4);
    assert.deepEqual(seen, [1, 2]);
    subscription.close();
  });
});

describe("conversations, against the dev server", () => {
  test("edit, react, reply, delete: the answers and the list route agree", async () => {
    const alice = await signedIn();
    const bob = await signedIn();
    const room = unique("room");
    await alice.client.createRoom({ id: room });
    const original = await alice.client.postMessage(room, { content: "hello there" });
    assert.equal(original.edited_at, null);
    assert.equal(original.deleted_at, null);
    assert.deepEqual(original.reactions, []);
    assert.equal(original.reply_to, null);
    assert.equal(original.reply_count, 0);

    const edited = await alice.client.editMessage(room, original.id, "hello, edited");
    assert.equal(edited.content, "hello, edited");
    assert.equal(edited.seq, original.seq);
    assert.ok(edited.edited_at, "edited_at is set");
    await assert.rejects(bob.client.editMessage(room, original.id, "mine now"), {
      status: 403,
      code: "not_message_author",
    });

    const reacted = await bob.client.addReaction(room, original.id, "👍");
    assert.deepEqual(reacted.reactions, [{ emoji: "👍", count: 1, me: true }]);
    const twice = await bob.client.addReaction(room, original.id, "👍");
    assert.deepEqual(twice.reactions, [{ emoji: "👍", count: 1, me: true }], "idempotent");
    const both = await alice.client.addReaction(room, original.id, "👍");
    assert.deepEqual(both.reactions, [{ emoji: "👍", count: 2, me: true }]);
    await alice.client.addReaction(room, original.id, "👩‍👩‍👧");
    const removed = await alice.client.removeReaction(room, original.id, "👍");
    assert.deepEqual(removed.reactions, [
      { emoji: "👍", count: 1, me: false },
      { emoji: "👩‍👩‍👧", count: 1, me: true },
    ]);
    await assert.rejects(alice.client.addReaction(room, original.id, "not an emoji"), {
      status: 400,
      code: "invalid_field",
    });

    const reply = await bob.client.postMessage(room, { content: "a reply", replyTo: original.id });
    assert.equal(reply.reply_to?.id, original.id);
    assert.equal(reply.reply_to?.seq, original.seq);
    assert.equal(reply.reply_to?.user_email, alice.email);
    assert.equal(reply.reply_to?.excerpt, "hello, edited");
    const replies = await alice.client.listReplies(room, original.id);
    assert.deepEqual(replies.messages.map((m) => m.id), [reply.id]);
    assert.equal(replies.has_more, false);
    const { messages: listed } = await alice.client.listMessages(room);
    assert.equal(listed[0].reply_count, 1);
    assert.equal(listed[0].content, "hello, edited");

    await assert.rejects(bob.client.deleteMessage(room, original.id), { status: 403, code: "not_message_author" });
    const tombstone = await alice.client.deleteMessage(room, original.id);
    assert.ok(tombstone.deleted_at);
    assert.equal(tombstone.content, "");
    assert.deepEqual(tombstone.reactions, []);
    assert.equal(tombstone.seq, original.seq);
    await assert.rejects(alice.client.editMessage(room, original.id, "back"), { status: 409, code: "message_deleted" });
    await assert.rejects(alice.client.addReaction(room, original.id, "🎉"), { status: 409, code: "message_deleted" });
    const { messages: after } = await bob.client.listMessages(room);
    assert.deepEqual(after.map((m) => [m.seq, m.deleted_at !== null]), [[1, true], [2, false]]);
    assert.equal(after[1].reply_to?.excerpt, "", "the quote of a deleted message is empty");
    await assert.rejects(alice.client.editMessage(room, crypto.randomUUID(), "x"), {
      status: 404,
      code: "message_not_found",
    });
  });

  test("read marks: markRead, unread in listRooms, and onRead on the user's stream", async () => {
    const alice = await signedIn();
    const bob = await signedIn();
    const room = unique("room");
    await alice.client.createRoom({ id: room });
    for (let i = 0; i < 3; i++) await alice.client.postMessage(room, { content: `m${i}` });
    const unread = (await bob.client.listRooms()).find((r) => r.id === room);
    assert.equal(unread?.unread, 3);
    assert.equal(unread?.last_read_seq, 0);
    assert.equal((await alice.client.listRooms()).find((r) => r.id === room)?.unread, 0, "own posts are read");

    /** @type {import("../chat-client.js").ReadEvent[]} */
    const reads = [];
    let opened = 0;
    const subscription = bob.client.subscribe(room, { lastSeq: 3, onOpen: () => opened++, onRead: (r) => reads.push(r) });
    try {
      await until(() => opened > 0, 5000, "the stream to open");
      const mark = await bob.client.markRead(room, 2);
      assert.deepEqual(mark, { last_read_seq: 2, unread: 1 });
      assert.deepEqual(await bob.client.markRead(room, 1), { last_read_seq: 2, unread: 1 }, "only forward");
      await until(() => reads.some((r) => r.last_read_seq === 2), 5000, "the read event");
      assert.equal(reads[0].room_id, room);
      const before = subscription.lastEventId;
      await bob.client.markRead(room, 3);
      await until(() => reads.some((r) => r.last_read_seq === 3), 5000, "the second read event");
      assert.equal(subscription.lastEventId, before, "a read event does not move the resume point");
      assert.equal((await bob.client.listRooms()).find((r) => r.id === room)?.unread, 0);
    } finally {
      subscription.close();
    }
  });

  test("a page's last_event_id resumes exactly after it: nothing listed comes again", async () => {
    const { client } = await signedIn();
    const room = unique("room");
    await client.createRoom({ id: room });
    const first = await client.postMessage(room, { content: "one" });
    await client.addReaction(room, first.id, "👀"); // event ids run ahead of seqs
    const second = await client.postMessage(room, { content: "two" });
    const page = await client.listMessages(room);
    assert.equal(page.last_event_id, second.event_id);
    assert.ok(second.event_id > second.seq, `${second.event_id} > ${second.seq}`);
    /** @type {string[]} */
    const log = [];
    let opened = 0;
    const subscription = client.subscribe(room, {
      lastSeq: second.seq,
      lastEventId: page.last_event_id,
      onOpen: () => opened++,
      onMessage: (m) => log.push(`new ${m.content}`),
      onUpdate: (m) => log.push(`update ${m.content}`),
    });
    try {
      await until(() => opened > 0, 5000, "the stream to open");
      const edited = await client.editMessage(room, second.id, "two, edited");
      await until(() => log.length >= 1, 5000, "the edit");
      await new Promise((resolve) => setTimeout(resolve, 300));
      assert.deepEqual(log, ["update two, edited"], "only the change after the page");
      assert.equal(subscription.lastEventId, edited.event_id);
    } finally {
      subscription.close();
    }
  });

  test("a subscriber sees new messages, edits, reactions and deletes once each, in order", async () => {
    const alice = await signedIn();
    const bob = await signedIn();
    const room = unique("room");
    await alice.client.createRoom({ id: room });
    const first = await alice.client.postMessage(room, { content: "first" });
    /** @type {string[]} */
    const log = [];
    let opened = 0;
    const subscription = bob.client.subscribe(room, {
      lastSeq: first.seq,
      onOpen: () => opened++,
      onMessage: (m) => log.push(`new ${m.content}`),
      onUpdate: (m) => log.push(`update ${m.content} ${m.reactions.map((r) => `${r.emoji}${r.count}${r.me ? "*" : ""}`).join(",")}`),
      onDelete: (m) => log.push(`delete ${m.seq}`),
    });
    try {
      await until(() => opened > 0, 5000, "the stream to open");
      // Each step waits for its event, so none is collapsed with the next.
      await alice.client.postMessage(room, { content: "second" });
      await until(() => log.length >= 1, 5000, "the post");
      await alice.client.editMessage(room, first.id, "first, edited");
      await until(() => log.length >= 2, 5000, "the edit");
      await bob.client.addReaction(room, first.id, "🎉");
      await until(() => log.length >= 3, 5000, "the reaction");
      await alice.client.deleteMessage(room, first.id);
      await until(() => log.length >= 4, 5000, "the delete");
      assert.deepEqual(log, ["new second", "update first, edited ", "update first, edited 🎉1*", `delete ${first.seq}`]);
      const id = subscription.lastEventId ?? 0;
      assert.ok(id > 2, `event ids count every change, not just posts (${id})`);
    } finally {
      subscription.close();
    }
  });
});
