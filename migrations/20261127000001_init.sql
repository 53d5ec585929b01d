-- Rooms, messages, message files and pending uploads.
-- Append-only: never edit a migration that has run; add a new one.

CREATE TABLE chat_rooms (
    id          text        NOT NULL,
    name        text        NOT NULL,
    created_by  text        NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    -- The seq of the newest message. Bumped under the row lock in the insert statement,
    -- so writers of one room serialise and commit order equals seq order.
    last_seq    bigint      NOT NULL DEFAULT 0,
    CONSTRAINT chat_rooms_pkey PRIMARY KEY (id),
    CONSTRAINT chat_rooms_id_format CHECK (id ~ '^[A-Za-z0-9_-]{1,64}$'),
    CONSTRAINT chat_rooms_name_length CHECK (char_length(name) BETWEEN 1 AND 100)
);

CREATE TABLE chat_messages (
    id          uuid        NOT NULL,  -- UUIDv7
    room_id     text        NOT NULL,
    seq         bigint      NOT NULL,  -- 1, 2, 3, ... per room, no gaps
    user_email  text        NOT NULL,
    content     text        NOT NULL,
    client_id   uuid,                  -- idempotency key chosen by the client
    created_at  timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT chat_messages_pkey PRIMARY KEY (id),
    CONSTRAINT chat_messages_room_fkey FOREIGN KEY (room_id) REFERENCES chat_rooms (id) ON DELETE CASCADE,
    CONSTRAINT chat_messages_content_length CHECK (char_length(content) <= 4000)
);

-- Serves paging (before/after/latest) and stream catch-up.
CREATE UNIQUE INDEX chat_messages_room_seq_key ON chat_messages (room_id, seq);
-- A retried send with the same client_id hits this and returns the stored message.
CREATE UNIQUE INDEX chat_messages_room_client_id_key ON chat_messages (room_id, client_id);
-- Names kept from the deployed system.
CREATE INDEX idx_chat_messages_room ON chat_messages (room_id, created_at DESC);
CREATE INDEX idx_chat_messages_user ON chat_messages (user_email);

-- An upload presigned but not yet attached to a message.
CREATE TABLE chat_uploads (
    id            uuid        NOT NULL,
    room_id       text        NOT NULL,
    user_email    text        NOT NULL,
    object_key    text        NOT NULL,
    file_name     text        NOT NULL,
    content_type  text        NOT NULL,
    size          bigint      NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT chat_uploads_pkey PRIMARY KEY (id),
    CONSTRAINT chat_uploads_room_fkey FOREIGN KEY (room_id) REFERENCES chat_rooms (id) ON DELETE CASCADE,
    CONSTRAINT chat_uploads_size_check CHECK (size >= 0)
);

-- Finds orphaned uploads by age.
CREATE INDEX idx_chat_uploads_created ON chat_uploads (created_at);

-- A file attached to a message. Its id is the upload's id.
CREATE TABLE chat_message_files (
    id            uuid        NOT NULL,
    message_id    uuid        NOT NULL,
    object_key    text        NOT NULL,
    file_name     text        NOT NULL,
    content_type  text        NOT NULL,
    size          bigint      NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT chat_message_files_pkey PRIMARY KEY (id),
    CONSTRAINT chat_message_files_message_fkey FOREIGN KEY (message_id) REFERENCES chat_messages (id) ON DELETE CASCADE
);

CREATE INDEX idx_chat_message_files_message ON chat_message_files (message_id);
