// Types of chat-client.js: the browser/Node client of the chat API (see ../openapi.yaml).

/** `public`: every signed-in user; `private`: the owner and members only. */
export type Visibility = "public" | "private";

export interface Room {
  id: string;
  name: string;
  visibility: Visibility;
  /** The creator's email. */
  owner: string;
  /** RFC 3339 UTC, e.g. `2026-11-27T21:00:19.991Z`. */
  created_at: string;
  /** The newest message's seq (0 when empty). */
  last_seq: number;
  /** The caller's read mark: the newest seq they have read (0: none). */
  last_read_seq: number;
  /** Messages by others after the mark, deleted ones excluded. */
  unread: number;
  /** Set (true) by a server that caps `unread`: there are more than `unread`. */
  unread_capped?: boolean;
}

export interface ChatFile {
  id: string;
  file_name: string;
  content_type: string;
  /** The upload's size, whatever `url` serves (see `served_size`). */
  size: number;
  /** A presigned GET (valid 6 h; re-list to refresh) or a public URL. Served inline for
   * raster images, audio and MP4/WebM video, as an attachment otherwise. */
  url: string;
  /** Of the image `url` serves, orientation applied; null while processing, for anything not
   * processed, and for an image processing refused. */
  width: number | null;
  height: number | null;
  /** A WebP of at most THUMBNAIL_MAX_PX (320) on the long side. */
  thumbnail_url: string | null;
  /** A tiny WebP as a `data:` URI: show it blurred in a `width` × `height` box until the
   * thumbnail loads. */
  placeholder: string | null;
  /** True while an image waits for processing; the message then comes again through
   * `onUpdate` (`event: message.updated`). */
  processing: boolean;
  /** Which bytes `url` serves: as uploaded, re-encoded without metadata, or also scaled
   * down to IMAGE_MAX_PX. */
  served: "original" | "stripped" | "resized";
  /** The size of what `url` serves. */
  served_size: number;
}

export interface Message {
  /** UUID v7. */
  id: string;
  room_id: string;
  /** 1, 2, 3, … per room, gapless, in commit order. */
  seq: number;
  /** The room-log event that last changed it (its stream `id:`): of two states of one
   * message, the higher `event_id` is newer. */
  event_id: number;
  user_email: string;
  content: string;
  client_id: string | null;
  created_at: string;
  /** When the content was last edited, else null. */
  edited_at: string | null;
  /** Set on a tombstone: `content` is "", `files` and `reactions` are empty; it keeps its seq. */
  deleted_at: string | null;
  /** Files stay attached through edits. */
  files: ChatFile[];
  /** One entry per emoji, first reacted first. */
  reactions: Reaction[];
  /** The message this one replies to, quoted as it was when the reply was sent. */
  reply_to: ReplyTo | null;
  /** Replies ever sent to this message. */
  reply_count: number;
}

export interface Reaction {
  /** One emoji grapheme cluster, or a `:short_name:`. */
  emoji: string;
  count: number;
  /** The caller reacted with it (on a stream: the stream's user). */
  me: boolean;
}

export interface ReplyTo {
  id: string;
  seq: number;
  user_email: string;
  /** At most 100 characters of the original; "" once it is deleted. */
  excerpt: string;
}

/** `markRead`'s answer. */
export interface ReadState {
  /** The mark after the call (it only moves forward). */
  last_read_seq: number;
  /** Messages by others after it. */
  unread: number;
}

/** A read mark of this user moved (`event: read`), in any room. */
export interface ReadEvent {
  room_id: string;
  last_read_seq: number;
}

/** Someone is typing in the room (`event: typing`); the typist's own streams get it too. */
export interface TypingEvent {
  user_email: string;
  /** RFC 3339; stop showing "… is typing" after it unless another event comes. */
  expires_at: string;
}

/** A user's first stream on the room opened, or their last one closed (debounced), on any
 * instance (`event: presence`). */
export interface PresenceEvent {
  user_email: string;
  status: "online" | "offline";
}

/** `event: presence.crowded`: the room went past `PRESENCE_EVENTS_MAX_ONLINE` users present
 * (`crowded`: no per-user `presence` from now on), or came back down to 90 % of it (then an
 * `online` for everyone present follows, this user included). */
export interface PresenceCrowdedEvent {
  crowded: boolean;
  online_count: number;
  limit: number;
}

/** `presence`'s answer: who has an open stream on the room, on any instance, once each. */
export interface PresenceList {
  online: { user_email: string; since: string }[];
}

export interface MessagePage {
  /** Always ascending seq. */
  messages: Message[];
  /** More exist beyond this page in the direction of travel. */
  has_more: boolean;
  /** The message list only (not replies): the room's newest event id as of this page.
   * Subscribe with it as `lastEventId` to get exactly the changes after the page. */
  last_event_id?: number;
}

export interface Member {
  email: string;
  added_at: string;
}

export interface MemberList {
  owner: string;
  members: Member[];
}

export interface Upload {
  id: string;
  method: "PUT";
  url: string;
  headers: Record<string, string>;
  expires_at: string;
}

export interface CreateRoomInput {
  /**
   * `^[A-Za-z0-9_-]{1,64}$`. Omit it and the server picks an unguessable id (22 characters,
   * 128 random bits): ids are global and a taken one answers 409 `room_exists` to anyone, so
   * private rooms should not choose theirs.
   */
  id?: string;
  /** 1–100 characters; defaults to the id. */
  name?: string;
  visibility?: Visibility;
}

export interface ListMessagesOptions {
  /** 1–200, default 100. */
  limit?: number;
  /** The newest `limit` messages with seq below this (older). */
  before?: number;
  /** The oldest `limit` messages with seq above this (newer). */
  after?: number;
  signal?: AbortSignal;
}

export interface PostMessageInput {
  /** 1–4000 characters; may be blank only with files. */
  content?: string;
  /** Upload ids from `uploadFile`. */
  fileIds?: string[];
  /** The idempotency key; one is generated (crypto.randomUUID) when omitted. */
  clientId?: string;
  /** The id of a message of the same room this one replies to. */
  replyTo?: string;
  /** The same as `replyTo`, by its name on the wire. */
  reply_to?: string;
  /** Tries in all, on network errors, 503 and 429 (default 5). */
  attempts?: number;
  signal?: AbortSignal;
}

/** Options of the idempotent writes (edit, delete, reactions, read marks). */
export interface WriteOptions {
  /** Tries in all, on network errors, 503 and 429 (default 5). */
  attempts?: number;
  signal?: AbortSignal;
}

export interface ListRepliesOptions {
  /** 1–200, default 100. */
  limit?: number;
  /** Replies with seq above this (the next page: the last seq of the previous one). */
  after?: number;
  signal?: AbortSignal;
}

export interface UploadProgress {
  loaded: number;
  total: number;
}

export interface UploadOptions {
  /** Called as bytes go out (XMLHttpRequest), or at start and end (fetch, e.g. in Node). */
  onProgress?: (progress: UploadProgress) => void;
  /** Defaults to `file.name` (a File), else `"file"`. */
  fileName?: string;
  /** Defaults to `file.type`, else `application/octet-stream`. */
  contentType?: string;
  signal?: AbortSignal;
}

export interface ResetInfo {
  /** The room's newest seq: reload the list, then keep going. */
  lastSeq: number;
  /** The stream continues after this event id. */
  lastEventId: number;
}

/**
 * Every change to the room reaches exactly one callback once (repeats, by event id, are
 * dropped). Treat `onMessage` and `onUpdate` as an upsert by `message.id`: each carries the
 * message's full current state, and changes may be collapsed into one (its newest state).
 */
export interface SubscribeOptions {
  /**
   * A message this subscription has not delivered and that is above `lastSeq`. Usually in
   * seq order, but a message whose post and later changes were collapsed arrives at the
   * place of its newest change.
   */
  onMessage?: (message: Message) => void;
  /** A message the caller has (seq ≤ `lastSeq`, or delivered) changed: an edit, a
   * reaction, a new reply (`reply_count`). Without a `lastSeq`, also changes to messages
   * from before the subscription. */
  onUpdate?: (message: Message) => void;
  /** A message was deleted: the tombstone (it may be the first sight of the message). */
  onDelete?: (tombstone: Message) => void;
  /** This user's read mark moved in some room (any room: every stream of theirs gets it). */
  onRead?: (read: ReadEvent) => void;
  /** Someone (perhaps this user: filter by `user_email`) is typing; at most one a second
   * per user. Never replayed on resume. */
  onTyping?: (typing: TypingEvent) => void;
  /** Someone came online or went offline in the room. Take the starting list from
   * `presence(room)`; this tells the changes after it. Never replayed on resume. */
  onPresence?: (presence: PresenceEvent) => void;
  /** The room has too many users present for per-user events (`crowded: true`: show
   * `online_count`, or take the list from `presence(room)`), or no longer does (`crowded:
   * false`: start the list over; an `online` for everyone follows). Also a stream's first
   * presence on a crowded room, instead of its opening list. */
  onPresenceCrowded?: (crowded: PresenceCrowdedEvent) => void;
  /** The client fell too far behind: reload with `listMessages`. */
  onReset?: (info: ResetInfo) => void;
  /** The stream is open (first time and after each reconnect). */
  onOpen?: () => void;
  /**
   * The stream was refused or could not be reached; it is reopened by itself after
   * `retryInMs`. `error` is what a probe of the stream URL answered (EventSource hides it):
   * e.g. status 429 `too_many_streams_for_user` or 503 `too_many_streams`, with `retryAfter`;
   * status 0 when nothing answered. The delay is a jittered exponential backoff, and never
   * shorter than the server's `Retry-After`.
   */
  onError?: (error: ChatApiError, retryInMs: number) => void;
  /**
   * The newest seq the caller has (e.g. the last one `listMessages` returned): the stream
   * resumes after it (unless `lastEventId` is given) and messages up to it count as had.
   */
  lastSeq?: number;
  /** Resume after this event id (e.g. a previous subscription's `lastEventId`). */
  lastEventId?: number;
}

export interface Subscription {
  /** The newest message seq delivered (or had, or reset to). */
  readonly lastSeq: number | undefined;
  /** The newest event id received: where a new stream resumes. */
  readonly lastEventId: number | undefined;
  close(): void;
}

export interface EventSourceLike {
  readonly readyState: number;
  addEventListener(type: string, listener: (event: MessageEvent) => void): void;
  close(): void;
  onerror: ((event: Event) => unknown) | null;
  onopen: ((event: Event) => unknown) | null;
}

export type EventSourceConstructor = new (url: string) => EventSourceLike;

export interface ClientOptions {
  /** The API's origin, e.g. `https://chat.example.com`; `""` for the page's own. */
  baseUrl?: string;
  /** Returns the current JWT (your auth provider's, or the dev server's). */
  getToken?: () => string | null | undefined | Promise<string | null | undefined>;
  /** Defaults to globalThis.fetch. */
  fetch?: typeof fetch;
  /** Defaults to globalThis.EventSource (Node 20 has none: pass one). */
  EventSource?: EventSourceConstructor;
  /** Defaults to globalThis.XMLHttpRequest; without one, uploads use fetch. */
  XMLHttpRequest?: typeof XMLHttpRequest | null;
  /**
   * Stream reconnect backoff: the first and the largest ceiling, in ms (default 1000 and
   * 30000); each delay is drawn between half the ceiling and all of it. A `Retry-After`
   * from the server wins when longer, even past `max`.
   */
  reconnectDelayMs?: { min?: number; max?: number };
}

export interface ChatClient {
  listRooms(options?: { signal?: AbortSignal }): Promise<Room[]>;
  /** Without `input.id` the server generates an unguessable id (use it for private rooms). */
  createRoom(input?: CreateRoomInput, options?: { signal?: AbortSignal }): Promise<Room>;
  listMessages(room: string, options?: ListMessagesOptions): Promise<MessagePage>;
  postMessage(room: string, input: PostMessageInput): Promise<Message>;
  /** Author only; files stay attached. 409 `message_deleted` on a tombstone. */
  editMessage(room: string, id: string, content: string, options?: WriteOptions): Promise<Message>;
  /** Author or room owner; answers the tombstone (also when deleted already). */
  deleteMessage(room: string, id: string, options?: WriteOptions): Promise<Message>;
  /** Adds the caller's `emoji` (idempotent); answers the message. */
  addReaction(room: string, id: string, emoji: string, options?: WriteOptions): Promise<Message>;
  /** Removes the caller's `emoji` (idempotent); answers the message. */
  removeReaction(room: string, id: string, emoji: string, options?: WriteOptions): Promise<Message>;
  /** Replies to a message, oldest first. */
  listReplies(room: string, id: string, options?: ListRepliesOptions): Promise<MessagePage>;
  /** Moves the caller's read mark forward to `seq` (a lower one is ignored). */
  markRead(room: string, seq: number, options?: WriteOptions): Promise<ReadState>;
  /** Presigns, PUTs the file with the returned headers, and returns the upload id. */
  uploadFile(room: string, file: Blob, options?: UploadOptions): Promise<string>;
  subscribe(room: string, options: SubscribeOptions): Subscription;
  /** Tells the room the caller is typing. Call it on every keystroke: it calls the API at
   * most once a second per room, and resolves `false` when it did not. */
  sendTyping(room: string, options?: { signal?: AbortSignal }): Promise<boolean>;
  /** Who is online in the room now, on any instance. */
  presence(room: string, options?: { signal?: AbortSignal }): Promise<PresenceList>;
  listMembers(room: string, options?: { signal?: AbortSignal }): Promise<MemberList>;
  addMember(room: string, email: string, options?: { signal?: AbortSignal }): Promise<Member>;
  removeMember(room: string, email: string, options?: { signal?: AbortSignal }): Promise<void>;
}

export declare function createClient(options?: ClientOptions): ChatClient;

/** Every failure: `status` 0 and code `network_error` when no HTTP answer came. */
export declare class ChatApiError extends Error {
  constructor(
    status: number,
    code: string,
    message: string,
    options?: { retryAfter?: number | null; cause?: unknown },
  );
  readonly status: number;
  /** The API's error code (`room_not_found`, `rate_limited`, …). */
  readonly code: string;
  /** Seconds, from `Retry-After` (429, 503), else null. */
  readonly retryAfter: number | null;
}
