-- Conversations: edits, deletes, reactions and replies as events in each room's ordered log,
-- plus read marks.
--
-- The room's log: every change to a room's messages (a post, an edit, a reaction change, a
-- delete, a reply changing its original's `reply_count`) takes the next `last_event` of the
-- room under the room's row lock and stamps it on the message row as `event_id`, so a
-- message row always carries its newest event id, and event ids strictly increase in commit
-- order. Streams read the log as `event_id > cursor` through `idx_chat_messages_room`; a
-- message changed several times between two reads comes once, in its newest state.
-- Before this migration every event was a post and its id was the message's seq, so the
-- ids already handed out (`Last-Event-ID`) keep their meaning: event_id = seq below.

ALTER TABLE chat_rooms
    ADD COLUMN last_event bigint NOT NULL DEFAULT 0;
UPDATE chat_rooms SET last_event = last_seq;

ALTER TABLE chat_messages
    ADD COLUMN event_id      bigint,
    -- The event that created the message: `message` versus `message.updated` on the stream.
    ADD COLUMN created_event bigint,
    ADD COLUMN edited_at     timestamptz,
    ADD COLUMN deleted_at    timestamptz,
    -- [{"emoji": "👍", "count": 2}, …] in first-reacted order; who reacted is in
    -- chat_message_reactions. Kept on the row so a page reads counts with no join.
    ADD COLUMN reactions     jsonb NOT NULL DEFAULT '[]',
    -- A reply quotes its original as it was when the reply was sent.
    ADD COLUMN reply_to      uuid,
    ADD COLUMN reply_to_seq  bigint,
    ADD COLUMN reply_to_user text,
    ADD COLUMN reply_excerpt text,
    ADD COLUMN reply_count   integer NOT NULL DEFAULT 0;
UPDATE chat_messages SET event_id = seq, created_event = seq;
ALTER TABLE chat_messages
    ALTER COLUMN event_id SET NOT NULL,
    ALTER COLUMN created_event SET NOT NULL;

-- The name is kept from the deployed system; it served `created_at` order, which no query
-- reads. It now serves the room's log: catch-up and the stream hub's reads.
DROP INDEX idx_chat_messages_room;
CREATE UNIQUE INDEX idx_chat_messages_room ON chat_messages (room_id, event_id);
-- `idx_chat_messages_user` (user_email) served no query: no statement of the API reads
-- messages by author (a retried send looks up `(room_id, client_id)`). The name is the
-- deployed system's and stays; it now covers tombstones only (a user's deleted messages),
-- so posts, edits and reactions write no entry to it.
DROP INDEX idx_chat_messages_user;
CREATE INDEX idx_chat_messages_user ON chat_messages (user_email) WHERE deleted_at IS NOT NULL;
-- The replies of a message, oldest first. Partial: a message that replies to none costs
-- nothing here.
CREATE INDEX chat_messages_reply_to ON chat_messages (reply_to, seq) WHERE reply_to IS NOT NULL;
-- Unread counts leave out tombstones after the mark. Partial: only deleted messages.
CREATE INDEX chat_messages_deleted ON chat_messages (room_id, seq) WHERE deleted_at IS NOT NULL;

-- Who reacted with what: one row per user per emoji per message.
CREATE TABLE chat_message_reactions (
    message_id  uuid        NOT NULL,
    user_email  text        NOT NULL,
    emoji       text        NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT chat_message_reactions_pkey PRIMARY KEY (message_id, user_email, emoji),
    CONSTRAINT chat_message_reactions_message_fkey FOREIGN KEY (message_id)
        REFERENCES chat_messages (id) ON DELETE CASCADE
);

-- How far each user has read each room.
CREATE TABLE chat_read_marks (
    room_id        text        NOT NULL,
    user_email     text        NOT NULL,
    last_read_seq  bigint      NOT NULL,
    updated_at     timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT chat_read_marks_pkey PRIMARY KEY (room_id, user_email),
    CONSTRAINT chat_read_marks_room_fkey FOREIGN KEY (room_id) REFERENCES chat_rooms (id) ON DELETE CASCADE
);
-- The stream hub's "whose marks moved lately" for the users it serves.
CREATE INDEX chat_read_marks_user_updated ON chat_read_marks (user_email, updated_at);

-- Everyone who posted has read up to their newest message.
INSERT INTO chat_read_marks (room_id, user_email, last_read_seq)
SELECT room_id, user_email, max(seq) FROM chat_messages GROUP BY room_id, user_email;

-- Objects of deleted messages not yet removed from storage (the cleanup cron retries).
CREATE TABLE chat_object_trash (
    object_key  text        NOT NULL,
    queued_at   timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT chat_object_trash_pkey PRIMARY KEY (object_key)
);
-- The cleanup cron retries the oldest first.
CREATE INDEX chat_object_trash_queued ON chat_object_trash (queued_at);
