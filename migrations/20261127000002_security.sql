-- Private rooms, membership and per-user rate limits.

ALTER TABLE chat_rooms
    ADD COLUMN visibility text NOT NULL DEFAULT 'public',
    ADD CONSTRAINT chat_rooms_visibility_check CHECK (visibility IN ('public', 'private')),
    -- Bumped on every membership change, so the stream hub notices removals with the same
    -- one query per tick that reads last_seq.
    ADD COLUMN members_version bigint NOT NULL DEFAULT 0;

-- Who may see a private room besides its creator (`chat_rooms.created_by`, the owner).
CREATE TABLE chat_room_members (
    room_id     text        NOT NULL,
    user_email  text        NOT NULL,
    added_by    text        NOT NULL,
    added_at    timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT chat_room_members_pkey PRIMARY KEY (room_id, user_email),
    CONSTRAINT chat_room_members_room_fkey FOREIGN KEY (room_id) REFERENCES chat_rooms (id) ON DELETE CASCADE
);

-- "Which rooms may this user see" for GET /api/rooms.
CREATE INDEX idx_chat_room_members_user ON chat_room_members (user_email);
CREATE INDEX idx_chat_rooms_created_by ON chat_rooms (created_by);

-- Token buckets, one per user and action, updated in the statement that does the write.
CREATE TABLE chat_rate_limits (
    user_email  text             NOT NULL,
    action      text             NOT NULL,
    tokens      double precision NOT NULL,
    updated_at  timestamptz      NOT NULL,
    CONSTRAINT chat_rate_limits_pkey PRIMARY KEY (user_email, action)
);
