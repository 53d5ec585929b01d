// The demo chat page: plain JS on the typed client, no build step.
import { ChatApiError, createClient } from "./chat-client.js";

const $ = (id) => document.getElementById(id);
const PAGE = 50;
/** The reaction buttons every message offers (any other emoji reacted shows too). */
const EMOJI = ["👍", "❤️", "😂", "🎉"];
/** How often the room list (and its unread counts) is refreshed: the page streams one room. */
const ROOMS_REFRESH_MS = 4000;
// `?api=https://…` points the page at another origin (which must list this one in
// CORS_ALLOWED_ORIGINS); by default the API is this page's own origin.
const baseUrl = new URLSearchParams(location.search).get("api") ?? "";

let session = JSON.parse(localStorage.getItem("chat-session") ?? "null"); // {email, token}
const chat = createClient({ baseUrl, getToken: () => session?.token });

const state = {
  room: null,
  subscription: null,
  byId: new Map(), // message id → {message, item}: a message is shown once, updated in place
  oldest: null,
  newest: 0, // the newest seq shown
  rooms: new Map(), // room id → Room (with last_read_seq and unread)
  roomButtons: new Map(), // room id → its <button> in the list
  composing: null, // {kind: "edit" | "reply", message} while the composer edits or replies
  online: new Set(), // who has a stream open on the room (any instance)
  crowded: /** @type {number | null} */ (null), // past the per-user limit: how many are present
  typing: new Map(), // email → the timer that hides "… is typing"
};

/** ASCII lower-casing, as the server compares emails. */
const sameEmail = (a, b) => a.trim().replace(/[A-Z]/g, (c) => c.toLowerCase()) === b.trim().replace(/[A-Z]/g, (c) => c.toLowerCase());
const mine = (message) => Boolean(session) && sameEmail(message.user_email, session.email);

// ---- errors -------------------------------------------------------------------------

function showError(err) {
  const text = err instanceof ChatApiError ? `${err.message} (${err.code})` : String(err?.message ?? err);
  $("error-text").textContent = text;
  $("error").hidden = false;
  if (err instanceof ChatApiError && err.status === 401) signOut();
}
$("error-close").onclick = () => ($("error").hidden = true);

/** Runs `fn`, showing any failure in the banner. */
async function guard(fn) {
  try {
    return await fn();
  } catch (err) {
    showError(err);
    return undefined;
  }
}

// ---- sign in ------------------------------------------------------------------------

async function devToken(email) {
  const response = await fetch(`${baseUrl}/api/dev/token`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ email }),
  });
  if (response.status === 404) {
    throw new ChatApiError(404, "no_dev_token", "This server has no dev token route: production uses your team's auth. Paste a token instead.");
  }
  const body = await response.json();
  if (!response.ok) throw new ChatApiError(response.status, body.error?.code ?? "error", body.error?.message ?? "Sign-in failed.");
  return body.token;
}

$("signin").onsubmit = (event) => {
  event.preventDefault();
  guard(async () => {
    const email = $("email").value.trim();
    const pasted = $("paste-token").value.trim();
    session = { email, token: pasted || (await devToken(email)) };
    localStorage.setItem("chat-session", JSON.stringify(session));
    await start();
  });
};

function signOut() {
  state.subscription?.close();
  clearInterval(state.roomsTimer);
  session = null;
  localStorage.removeItem("chat-session");
  render();
}
$("signout").onclick = signOut;

function render() {
  const signedIn = Boolean(session);
  $("signin").hidden = signedIn;
  $("sidebar").hidden = !signedIn;
  $("chat").hidden = !signedIn || !state.room;
  $("signout").hidden = !signedIn;
  $("who").textContent = signedIn ? session.email : "";
}

// ---- rooms --------------------------------------------------------------------------

async function loadRooms() {
  const rooms = await chat.listRooms();
  state.rooms = new Map(rooms.map((room) => [room.id, room]));
  renderRooms();
  return rooms;
}

/** The room list, its buttons kept (and updated in place) across refreshes. */
function renderRooms() {
  const buttons = [...state.rooms.values()].map((room) => {
    let button = state.roomButtons.get(room.id);
    if (!button) {
      button = document.createElement("button");
      button.type = "button";
      button.dataset.room = room.id;
      button.onclick = () => guard(() => openRoom(room.id));
      const name = document.createElement("span");
      const badge = document.createElement("span");
      badge.className = "badge";
      button.append(name, badge);
      state.roomButtons.set(room.id, button);
    }
    button.firstChild.textContent = `${room.visibility === "private" ? "🔒 " : "# "}${room.name}`;
    button.setAttribute("aria-current", String(room.id === state.room));
    // The room on screen has nothing unread: it is marked read as messages arrive.
    const unread = room.id === state.room && document.visibilityState === "visible" ? 0 : room.unread;
    const badge = button.lastChild;
    badge.hidden = !unread;
    badge.textContent = room.unread_capped ? `${unread}+` : String(unread);
    button.title = unread ? `${unread} unread` : "";
    return button;
  });
  const list = $("rooms");
  const current = [...list.children].map((item) => item.firstChild);
  if (current.length !== buttons.length || current.some((b, i) => b !== buttons[i])) {
    list.replaceChildren(
      ...buttons.map((button) => {
        const item = document.createElement("li");
        item.append(button);
        return item;
      }),
    );
  }
}

/** Refreshes the unread counts of every room (new messages elsewhere reach no stream here). */
async function refreshRooms() {
  if (!session || document.visibilityState !== "visible") return;
  try {
    await loadRooms();
  } catch {
    // A refresh that fails is retried at the next tick; an action shows its own errors.
  }
}

/** A read mark of ours moved (in this tab, another one, or by our own post). */
function readMoved(roomId, lastReadSeq) {
  const room = state.rooms.get(roomId);
  if (!room || lastReadSeq <= room.last_read_seq) return;
  room.last_read_seq = lastReadSeq;
  if (lastReadSeq > room.last_seq) room.last_seq = lastReadSeq; // a mark is never past the newest
  // Up to the room's newest seq nothing is left; otherwise ask for the count.
  if (lastReadSeq >= room.last_seq) room.unread = 0;
  else refreshRooms();
  renderRooms();
}

let markTimer;
/** Marks the room read up to the newest message shown (debounced), while it is on screen. */
function markSeen() {
  clearTimeout(markTimer);
  markTimer = setTimeout(() => {
    const room = state.rooms.get(state.room);
    // (A server without read marks has no last_read_seq: nothing to mark.)
    if (!room || room.last_read_seq === undefined) return;
    if (document.visibilityState !== "visible" || state.newest <= room.last_read_seq) return;
    const roomId = state.room;
    chat.markRead(roomId, state.newest).then(({ last_read_seq, unread }) => {
      const r = state.rooms.get(roomId);
      if (r && last_read_seq >= r.last_read_seq) Object.assign(r, { last_read_seq, unread });
      renderRooms();
    }, showError);
  }, 250);
}
document.addEventListener("visibilitychange", () => {
  renderRooms();
  markSeen();
  refreshRooms();
});

$("new-room").onsubmit = (event) => {
  event.preventDefault();
  guard(async () => {
    const text = $("room-id").value.trim();
    const isPrivate = $("room-private").checked;
    // Room ids are global and a taken one answers 409 to anyone, so a private room's id
    // would tell outsiders it exists: private rooms take the text as their name and let the
    // server pick an unguessable id. A public room's id is the text itself.
    const room = await chat.createRoom(
      isPrivate ? { name: text, visibility: "private" } : { id: text, visibility: "public" },
    );
    $("room-id").value = "";
    await openRoom(room.id);
  });
};

// ---- messages -----------------------------------------------------------------------

/** @returns {HTMLButtonElement} */
function button(className, text, onclick, label) {
  const b = document.createElement("button");
  b.type = "button";
  b.className = className;
  b.textContent = text;
  if (label) b.setAttribute("aria-label", label);
  b.onclick = () => guard(onclick);
  return b;
}

function messageItem(message) {
  const item = document.createElement("li");
  item.dataset.seq = String(message.seq);
  item.dataset.id = message.id;
  const deleted = message.deleted_at !== null && message.deleted_at !== undefined;
  item.classList.toggle("deleted", deleted);
  const meta = document.createElement("div");
  meta.className = "meta";
  const replies = message.reply_count ? ` · ${message.reply_count} ${message.reply_count === 1 ? "reply" : "replies"}` : "";
  meta.textContent = `${message.user_email} · ${new Date(message.created_at).toLocaleTimeString()} · #${message.seq}${message.edited_at && !deleted ? " · edited" : ""}${replies}`;
  item.append(meta);
  if (message.reply_to) {
    const quote = document.createElement("blockquote");
    quote.className = "quote";
    quote.textContent = `${message.reply_to.user_email}: ${message.reply_to.excerpt || "(deleted message)"}`;
    quote.onclick = () => state.byId.get(message.reply_to.id)?.item.scrollIntoView({ block: "center" });
    item.append(quote);
  }
  if (deleted) {
    const text = document.createElement("div");
    text.className = "text tombstone";
    text.textContent = "This message was deleted.";
    item.append(text);
    return item;
  }
  if (message.content) {
    const text = document.createElement("div");
    text.className = "text";
    text.textContent = message.content;
    item.append(text);
  }
  for (const file of message.files) item.append(renderFile(file));
  const bar = document.createElement("div");
  bar.className = "actions";
  const reactions = message.reactions ?? [];
  const emoji = [...EMOJI, ...reactions.map((r) => r.emoji).filter((e) => !EMOJI.includes(e))];
  for (const e of emoji) {
    const r = reactions.find((x) => x.emoji === e);
    const b = button("reaction", r ? `${e} ${r.count}` : e, () => react(message, e, !r?.me), `React ${e}`);
    b.dataset.emoji = e;
    b.dataset.count = String(r?.count ?? 0);
    b.setAttribute("aria-pressed", String(Boolean(r?.me)));
    bar.append(b);
  }
  bar.append(button("reply", "Reply", () => compose("reply", message)));
  if (mine(message)) bar.append(button("edit", "Edit", () => compose("edit", message)));
  const owner = state.rooms.get(state.room)?.owner;
  if (mine(message) || (owner && session && sameEmail(owner, session.email))) {
    bar.append(button("delete", "Delete", () => act(message, () => chat.deleteMessage(state.room, message.id))));
  }
  item.append(bar);
  return item;
}

/** Shows each message, or replaces the shown one (an upsert by id), in seq order. */
/** The box a thumbnail is shown in: at most 16rem × 12rem (256 × 192 px), the image's shape. */
const THUMB_BOX = { width: 256, height: 192 };
/** Raster images the browser shows, audio and video it plays: what the API serves inline. */
const SHOWN_IMAGES = ["image/png", "image/jpeg", "image/gif", "image/webp", "image/avif"];

/**
 * One attached file: an image at its final size (placeholder first, so nothing moves when the
 * thumbnail arrives), an audio or video player, or a download link.
 * @param {import("./chat-client.js").ChatFile} file
 */
function renderFile(file) {
  const type = file.content_type;
  if (type.startsWith("audio/")) {
    const audio = document.createElement("audio");
    audio.controls = true;
    audio.preload = "metadata";
    audio.src = file.url;
    audio.title = file.file_name;
    return audio;
  }
  if (type === "video/mp4" || type === "video/webm") {
    const video = document.createElement("video");
    video.controls = true;
    video.preload = "metadata";
    video.src = file.url;
    video.title = file.file_name;
    video.className = "video";
    return video;
  }
  if (SHOWN_IMAGES.includes(type)) {
    if (file.processing) {
      // Not yet processed: the original may still carry its metadata, so nothing is
      // fetched; the message comes again (message.updated) with the thumbnail.
      const pending = document.createElement("div");
      pending.className = "thumb pending";
      pending.textContent = "Processing image…";
      pending.dataset.file = file.id;
      return pending;
    }
    const link = document.createElement("a");
    link.href = file.url;
    link.target = "_blank";
    link.rel = "noopener";
    const img = document.createElement("img");
    img.alt = file.file_name;
    img.decoding = "async";
    if (file.thumbnail_url && file.width && file.height) {
      const scale = Math.min(1, THUMB_BOX.width / file.width, THUMB_BOX.height / file.height);
      img.className = "thumb";
      img.width = Math.max(1, Math.round(file.width * scale));
      img.height = Math.max(1, Math.round(file.height * scale));
      if (file.placeholder) img.style.backgroundImage = `url("${file.placeholder}")`;
      img.src = file.thumbnail_url;
    } else {
      img.src = file.url; // kept as uploaded (no thumbnail could be made)
    }
    link.append(img);
    return link;
  }
  const link = document.createElement("a");
  link.href = file.url;
  link.textContent = `📎 ${file.file_name} (${Math.ceil(file.size / 1024)} KiB)`;
  link.rel = "noopener";
  return link;
}

function addMessages(messages) {
  const list = $("messages");
  const scroller = $("scroller");
  const atBottom = scroller.scrollHeight - scroller.scrollTop - scroller.clientHeight < 40;
  for (const message of messages) {
    if (message.room_id !== undefined && message.room_id !== state.room) continue;
    const shown = state.byId.get(message.id);
    // A late answer never undoes a newer state the stream already showed.
    if (shown && message.event_id < shown.message.event_id) continue;
    const item = messageItem(message);
    if (shown) {
      shown.item.replaceWith(item);
    } else {
      // Before the first shown message with a larger seq.
      const next = [...list.children].find((li) => Number(li.dataset.seq) > message.seq);
      list.insertBefore(item, next ?? null);
      if (state.oldest === null || message.seq < state.oldest) state.oldest = message.seq;
      if (message.seq > state.newest) state.newest = message.seq;
    }
    state.byId.set(message.id, { message, item });
    if (state.composing?.message.id === message.id) state.composing.message = message;
    // A deleted message's quotes empty. The stream also sends each reply's new state; this
    // shows it at once, and for replies whose change was collapsed into a later one.
    if (message.deleted_at) {
      for (const shown of state.byId.values()) {
        const quoted = shown.message.reply_to;
        if (quoted?.id !== message.id || !quoted.excerpt) continue;
        const reply = { ...shown.message, reply_to: { ...quoted, excerpt: "" } };
        const replaced = messageItem(reply);
        shown.item.replaceWith(replaced);
        Object.assign(shown, { message: reply, item: replaced });
      }
    }
  }
  $("empty").hidden = state.byId.size > 0;
  if (atBottom) scroller.scrollTop = scroller.scrollHeight;
}

/** Runs a change to `message` and shows the answer (unless the stream showed a newer state). */
async function act(message, call) {
  addMessages([await call()]);
}

function react(message, emoji, add) {
  return act(message, () =>
    add ? chat.addReaction(state.room, message.id, emoji) : chat.removeReaction(state.room, message.id, emoji),
  );
}

/** The composer edits `message`, or replies to it; `null` back to a plain send. */
function compose(kind, message) {
  const wasEditing = state.composing?.kind === "edit";
  state.composing = kind ? { kind, message } : null;
  const context = $("composer-context");
  context.hidden = !kind;
  $("composer-what").textContent =
    kind === "edit"
      ? "Editing your message"
      : kind === "reply"
        ? `Replying to ${message.user_email}: ${message.content.slice(0, 100) || "(no text)"}`
        : "";
  $("send").textContent = kind === "edit" ? "Save" : "Send";
  $("file").disabled = kind === "edit";
  // An edit starts from the message's text and leaves nothing behind; a reply keeps the draft.
  if (kind === "edit") $("text").value = message.content;
  else if (wasEditing) $("text").value = "";
  if (kind) $("text").focus();
}
$("composer-cancel").onclick = () => compose(null);

/** Shows the newest page of the current room, from scratch. */
async function loadLatest() {
  const page = await chat.listMessages(state.room, { limit: PAGE });
  state.byId.clear();
  state.oldest = null;
  state.newest = 0;
  $("messages").replaceChildren();
  addMessages(page.messages);
  $("older").hidden = !page.has_more;
  $("scroller").scrollTop = $("scroller").scrollHeight;
  markSeen();
  return page;
}

$("older").onclick = () =>
  guard(async () => {
    const scroller = $("scroller");
    const fromBottom = scroller.scrollHeight - scroller.scrollTop;
    const page = await chat.listMessages(state.room, { before: state.oldest, limit: PAGE });
    addMessages(page.messages);
    $("older").hidden = !page.has_more;
    scroller.scrollTop = scroller.scrollHeight - fromBottom; // keep the view where it was
  });

// ---- presence and typing ------------------------------------------------------------

function renderOnline() {
  const list = $("online");
  list.replaceChildren(
    ...[...state.online].sort().map((email) => {
      const item = document.createElement("li");
      item.textContent = email;
      item.title = email;
      return item;
    }),
  );
  $("online-title").hidden = state.online.size === 0 && state.crowded === null;
  // Too many present to be told of each one: the count the stream gave.
  $("online-title").textContent = state.crowded === null ? "Online here" : `Online here: ${state.crowded}`;
}

function renderTyping() {
  const names = [...state.typing.keys()].sort();
  $("typing").textContent =
    names.length === 0 ? "" : names.length === 1 ? `${names[0]} is typing…` : `${names.join(", ")} are typing…`;
}

/** Someone else is typing until `expires_at` (or until their message arrives). */
function typingHeard({ user_email, expires_at }) {
  if (session && sameEmail(user_email, session.email)) return; // our own, echoed
  clearTimeout(state.typing.get(user_email));
  // The server's clock says when; bounded, so a skewed clock neither hides it at once nor
  // shows it for ever.
  const ms = Math.min(Math.max(Date.parse(expires_at) - Date.now(), 1000), 6000);
  state.typing.set(
    user_email,
    setTimeout(() => {
      state.typing.delete(user_email);
      renderTyping();
    }, ms),
  );
  renderTyping();
}

function typingStopped(email) {
  if (!state.typing.has(email)) return;
  clearTimeout(state.typing.get(email));
  state.typing.delete(email);
  renderTyping();
}

function clearPresence() {
  for (const timer of state.typing.values()) clearTimeout(timer);
  state.typing.clear();
  state.online.clear();
  state.crowded = null;
  renderTyping();
  renderOnline();
}

/**
 * A stream (re)opened: it starts with an `online` for everyone else already there, then
 * tells the changes, so the list starts over from ourselves on every open (nothing missed
 * while reconnecting is replayed). `chat.presence(room)` gives the same list by request.
 */
function presenceReset() {
  state.online = new Set(session ? [session.email] : []);
  state.crowded = null;
  renderOnline();
}

/**
 * The room has more users present than the server tells one by one (a count, no list), or
 * no longer does: an `online` for everyone present, ourselves included, follows.
 */
function presenceCrowded({ crowded, online_count }) {
  state.online.clear();
  state.crowded = crowded ? online_count : null;
  renderOnline();
}

function setStatus(text, stateName) {
  $("status").textContent = text;
  $("status").dataset.state = stateName;
}

async function openRoom(id) {
  state.subscription?.close();
  state.subscription = null;
  setStatus("connecting…", "connecting");
  if (state.room !== id) compose(null);
  clearPresence();
  state.room = id;
  location.hash = `room=${encodeURIComponent(id)}`;
  $("room-title").textContent = id;
  render();
  const rooms = await loadRooms();
  // A private room's id is random: show its name.
  $("room-title").textContent = rooms.find((room) => room.id === id)?.name ?? id;
  const page = await loadLatest();
  setStatus("connecting…", "connecting");
  // Live changes after the page (its last_event_id; the newest seq shown counts as had); the
  // client resumes after reconnects by event id and drops repeats. New messages, edits,
  // reactions and deletes are all upserts.
  const live = (message) => {
    addMessages([message]);
    typingStopped(message.user_email);
    if (!mine(message) && !message.deleted_at) {
      const room = state.rooms.get(id);
      if (room && message.seq > room.last_seq) room.last_seq = message.seq;
      if (room && message.seq > room.last_read_seq && document.visibilityState !== "visible") room.unread += 1;
      renderRooms();
    }
    markSeen();
  };
  state.subscription = chat.subscribe(id, {
    lastSeq: page.messages.at(-1)?.seq ?? 0,
    lastEventId: page.last_event_id,
    onOpen: () => {
      setStatus("live", "live");
      presenceReset();
    },
    onMessage: live,
    onUpdate: (message) => addMessages([message]),
    onDelete: (tombstone) => addMessages([tombstone]),
    onRead: ({ room_id, last_read_seq }) => readMoved(room_id, last_read_seq),
    onTyping: typingHeard,
    onPresence: ({ user_email, status }) => {
      if (status === "online") state.online.add(user_email);
      else {
        state.online.delete(user_email);
        typingStopped(user_email);
      }
      renderOnline();
    },
    onPresenceCrowded: presenceCrowded,
    onReset: () => guard(loadLatest),
    onError: (_err, retryInMs) => setStatus(`reconnecting in ${Math.round(retryInMs / 1000)} s…`, "reconnecting"),
  });
}

// ---- sending ------------------------------------------------------------------------

$("composer").onsubmit = (event) => {
  event.preventDefault();
  guard(async () => {
    const content = $("text").value;
    const file = $("file").files[0];
    const composing = state.composing;
    if (composing?.kind === "edit") {
      if (!content.trim() && !composing.message.files.length) return;
      $("send").disabled = true;
      try {
        await act(composing.message, () => chat.editMessage(state.room, composing.message.id, content));
        compose(null);
      } finally {
        $("send").disabled = false;
      }
      return;
    }
    if (!content.trim() && !file) return;
    $("send").disabled = true;
    try {
      const fileIds = [];
      if (file) {
        const progress = $("progress");
        progress.hidden = false;
        progress.value = 0;
        fileIds.push(
          await chat.uploadFile(state.room, file, {
            onProgress: ({ loaded, total }) => (progress.value = total ? (100 * loaded) / total : 100),
          }),
        );
      }
      const replyTo = composing?.kind === "reply" ? composing.message.id : undefined;
      const message = await chat.postMessage(state.room, { content, fileIds, replyTo });
      addMessages([message]);
      readMoved(state.room, message.seq); // a post moves its author's mark
      $("text").value = "";
      $("file").value = "";
      if (replyTo) compose(null);
    } finally {
      $("send").disabled = false;
      $("progress").hidden = true;
    }
  });
};

// The client calls the API at most once a second per room, however fast the keys.
$("text").oninput = () => {
  if (state.room && $("text").value.trim() && state.composing?.kind !== "edit") {
    chat.sendTyping(state.room).catch(() => {}); // best effort: typing is ephemeral
  }
};
// ---- voice notes ----------------------------------------------------------------------

/** The first recording type this browser's MediaRecorder supports, with its extension. */
function recordingType() {
  const types = [
    ["audio/webm;codecs=opus", "weba"],
    ["audio/ogg;codecs=opus", "ogg"],
    ["audio/mp4", "m4a"],
  ];
  return types.find(([t]) => globalThis.MediaRecorder?.isTypeSupported?.(t)) ?? null;
}

/** @type {{ recorder: MediaRecorder, chunks: Blob[] } | null} */
let recording = null;

async function toggleRecording() {
  const record = $("record");
  if (recording) {
    recording.recorder.stop();
    return;
  }
  const type = recordingType();
  if (!type) return;
  const stream = await navigator.mediaDevices.getUserMedia({ audio: true });
  const recorder = new MediaRecorder(stream, { mimeType: type[0] });
  const chunks = /** @type {Blob[]} */ ([]);
  recording = { recorder, chunks };
  recorder.ondataavailable = (e) => e.data.size && chunks.push(e.data);
  recorder.onstop = () =>
    guard(async () => {
      stream.getTracks().forEach((t) => t.stop());
      recording = null;
      record.textContent = "🎤";
      record.setAttribute("aria-pressed", "false");
      const blob = new Blob(chunks, { type: type[0] });
      if (!blob.size || !state.room) return;
      const id = await chat.uploadFile(state.room, blob, {
        fileName: `voice-note-${new Date().toISOString().slice(0, 19).replace(/:/g, "-")}.${type[1]}`,
      });
      const message = await chat.postMessage(state.room, { content: "", fileIds: [id] });
      addMessages([message]);
      readMoved(state.room, message.seq);
    });
  recorder.start();
  record.textContent = "⏹";
  record.setAttribute("aria-pressed", "true");
}

// Shown only where the browser can record (MediaRecorder and a microphone API).
if (globalThis.MediaRecorder && navigator.mediaDevices?.getUserMedia && recordingType()) {
  $("record").hidden = false;
  $("record").onclick = () => guard(toggleRecording);
}

// ---- start --------------------------------------------------------------------------

async function start() {
  render();
  if (!session) return;
  const rooms = await loadRooms();
  clearInterval(state.roomsTimer);
  state.roomsTimer = setInterval(refreshRooms, ROOMS_REFRESH_MS);
  const fromHash = new URLSearchParams(location.hash.slice(1)).get("room");
  const room = rooms.find((r) => r.id === fromHash) ?? rooms[0];
  if (room) await openRoom(room.id);
}

guard(start);
