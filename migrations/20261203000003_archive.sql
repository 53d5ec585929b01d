-- History tiered to object storage, and retention (`shared/src/archive/`).
--
-- The archive cron moves a room's oldest messages (by seq) out of `chat_messages`, with
-- their files' rows and reactions, into immutable gzip'd JSON objects in the bucket, one
-- per room per seq range: `archive/{room}/{first_seq}-{last_seq}.{max_event}.json.gz`.
-- The object is written first; then ONE transaction locks the rows, checks that their
-- event ids are the ones written (any change to a message stamps a new one), records the
-- segment here and deletes the rows. A crash before the commit leaves only an object no
-- row names (a rerun writes the same key again); after it, the move is whole.

ALTER TABLE chat_rooms
    -- The highest seq any segment of the room holds: a page reaching at or below it reads
    -- the segments too (`archive::read`). Only grows.
    ADD COLUMN archived_seq  bigint NOT NULL DEFAULT 0,
    -- The highest event id of any message that left the hot log (archived or deleted by
    -- retention): a stream resuming before it may have missed a change no longer in the
    -- log, so it is told `reset`. Only grows.
    ADD COLUMN history_floor bigint NOT NULL DEFAULT 0;

CREATE TABLE chat_archive_segments (
    object_key  text        NOT NULL,
    room_id     text        NOT NULL,
    first_seq   bigint      NOT NULL,
    last_seq    bigint      NOT NULL,
    -- The newest event id among its messages (part of the key: a segment's content is
    -- fixed by its seq range and this).
    max_event   bigint      NOT NULL,
    messages    integer     NOT NULL,
    -- The object's size (compressed), for the operator's numbers.
    bytes       bigint      NOT NULL,
    -- The range of its message ids (UUIDv7), to find the segment of a message by id.
    min_id      uuid        NOT NULL,
    max_id      uuid        NOT NULL,
    -- Its messages' created_at range, for retention.
    oldest_at   timestamptz NOT NULL,
    newest_at   timestamptz NOT NULL,
    -- The messages its messages reply to (distinct), to list replies through the tier.
    reply_parents uuid[]    NOT NULL DEFAULT '{}',
    created_at  timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT chat_archive_segments_pkey PRIMARY KEY (object_key),
    CONSTRAINT chat_archive_segments_room_fkey FOREIGN KEY (room_id) REFERENCES chat_rooms (id) ON DELETE CASCADE,
    CONSTRAINT chat_archive_segments_range CHECK (first_seq <= last_seq AND messages > 0)
);

-- A page's segments: the room's, newest range first.
CREATE INDEX chat_archive_segments_room_seq ON chat_archive_segments (room_id, last_seq);
-- Retention's oldest segments first.
CREATE INDEX chat_archive_segments_oldest ON chat_archive_segments (oldest_at);
