// The demo chat page: plain JS on the typed client, no build step.
import { ChatApiError, createClient } from "./chat-client.js";

const $ = (id) => document.getElementById(id);
const PAGE = 50;
// `?api=https://…` points the page at another origin (which must list this one in
// CORS_ALLOWED_ORIGINS); by default the API is this page's own origin.
const baseUrl = new URLSearchParams(location.search).get("api") ?? "";

let session = JSON.parse(localStorage.getItem("chat-session") ?? "null"); // {email, token}
const chat = createClient({ baseUrl, getToken: () => session?.token });

const state = {
  room: null,
  subscription: null,
  bySeq: new Map(), // seq → <li>, so a message shown once is never shown twice
  oldest: null,
};

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
  const list = $("rooms");
  list.replaceChildren(
    ...rooms.map((room) => {
      const button = document.createElement("button");
      button.type = "button";
      button.textContent = `${room.visibility === "private" ? "🔒 " : "# "}${room.name}`;
      button.dataset.room = room.id;
      button.setAttribute("aria-current", String(room.id === state.room));
      button.onclick = () => guard(() => openRoom(room.id));
      const item = document.createElement("li");
      item.append(button);
      return item;
    }),
  );
  return rooms;
}

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

function messageItem(message) {
  const item = document.createElement("li");
  item.dataset.seq = String(message.seq);
  const meta = document.createElement("div");
  meta.className = "meta";
  meta.textContent = `${message.user_email} · ${new Date(message.created_at).toLocaleTimeString()} · #${message.seq}`;
  item.append(meta);
  if (message.content) {
    const text = document.createElement("div");
    text.className = "text";
    text.textContent = message.content;
    item.append(text);
  }
  for (const file of message.files) {
    if (file.content_type.startsWith("image/")) {
      const img = document.createElement("img");
      img.src = file.url;
      img.alt = file.file_name;
      item.append(img);
    } else {
      const link = document.createElement("a");
      link.href = file.url;
      link.textContent = `📎 ${file.file_name} (${Math.ceil(file.size / 1024)} KiB)`;
      link.rel = "noopener";
      item.append(link);
    }
  }
  return item;
}

/** Adds messages in seq order, skipping any already shown. */
function addMessages(messages) {
  const list = $("messages");
  const scroller = $("scroller");
  const atBottom = scroller.scrollHeight - scroller.scrollTop - scroller.clientHeight < 40;
  for (const message of messages) {
    if (state.bySeq.has(message.seq)) continue;
    const item = messageItem(message);
    state.bySeq.set(message.seq, item);
    // Find the first shown message with a larger seq; insert before it.
    const next = [...state.bySeq.keys()].filter((s) => s > message.seq).sort((a, b) => a - b)[0];
    list.insertBefore(item, next === undefined ? null : state.bySeq.get(next));
    if (state.oldest === null || message.seq < state.oldest) state.oldest = message.seq;
  }
  $("empty").hidden = state.bySeq.size > 0;
  if (atBottom) scroller.scrollTop = scroller.scrollHeight;
}

/** Shows the newest page of the current room, from scratch. */
async function loadLatest() {
  const page = await chat.listMessages(state.room, { limit: PAGE });
  state.bySeq.clear();
  state.oldest = null;
  $("messages").replaceChildren();
  addMessages(page.messages);
  $("older").hidden = !page.has_more;
  $("scroller").scrollTop = $("scroller").scrollHeight;
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

function setStatus(text, stateName) {
  $("status").textContent = text;
  $("status").dataset.state = stateName;
}

async function openRoom(id) {
  state.subscription?.close();
  state.room = id;
  location.hash = `room=${encodeURIComponent(id)}`;
  $("room-title").textContent = id;
  render();
  const rooms = await loadRooms();
  // A private room's id is random: show its name.
  $("room-title").textContent = rooms.find((room) => room.id === id)?.name ?? id;
  const page = await loadLatest();
  setStatus("connecting…", "connecting");
  // Live updates from the newest seq shown; the client resumes after reconnects and
  // drops duplicates by seq.
  state.subscription = chat.subscribe(id, {
    lastSeq: page.messages.at(-1)?.seq ?? 0,
    onOpen: () => setStatus("live", "live"),
    onMessage: (message) => addMessages([message]),
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
      const message = await chat.postMessage(state.room, { content, fileIds });
      addMessages([message]);
      $("text").value = "";
      $("file").value = "";
    } finally {
      $("send").disabled = false;
      $("progress").hidden = true;
    }
  });
};

// ---- start --------------------------------------------------------------------------

async function start() {
  render();
  if (!session) return;
  const rooms = await loadRooms();
  const fromHash = new URLSearchParams(location.hash.slice(1)).get("room");
  const room = rooms.find((r) => r.id === fromHash) ?? rooms[0];
  if (room) await openRoom(room.id);
}

guard(start);
