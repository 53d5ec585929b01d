-- Presence: who holds an open stream on a room, per instance. Each instance upserts all of
-- its (room, user) pairs in one statement per heartbeat; a row counts until `expires_at`,
-- so an instance that dies without cleaning up stops counting its users on its own.
-- Unlogged: presence is ephemeral and rebuilt within one heartbeat after a crash.
CREATE UNLOGGED TABLE chat_presence (
    room_id     text        NOT NULL,
    user_email  text        NOT NULL,
    -- A random id per process.
    instance_id text        NOT NULL,
    -- When this instance's first stream of the user on the room opened.
    since       timestamptz NOT NULL,
    expires_at  timestamptz NOT NULL,
    CONSTRAINT chat_presence_pkey PRIMARY KEY (room_id, user_email, instance_id)
);

-- The heartbeat's sweep of every instance's expired rows.
CREATE INDEX idx_chat_presence_expires ON chat_presence (expires_at);
