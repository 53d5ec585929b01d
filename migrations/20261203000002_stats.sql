-- The operator's numbers (`GET /api/admin/stats`, `db::stats`): per-room counters kept as
-- messages and files change, so no figure counts `chat_messages` rows when it is asked.
--
-- A room's messages are `last_seq - deleted_count`: seqs are gapless and every post takes
-- the next one under the room's row lock (`chat_post`, `POST_BATCH`), so `last_seq` already
-- counts the messages ever posted, for free; `deleted_count` counts the tombstones, kept by
-- a trigger that fires only when a message's `deleted_at` is set (a delete). A statement
-- that removes rows outright without making them tombstones first (retention) must add
-- what it removes to `deleted_count` in the same transaction; moving rows to another tier
-- (archiving) changes neither, since they are still the room's messages.
--
-- A room's storage is `storage_bytes`: the sum of its attached files' `size` (the bytes
-- uploaded; a processed image's re-encoded copy and thumbnail are not counted), kept by
-- statement-level triggers on `chat_message_files`, so every way a file row comes or goes
-- (a send, a delete, a cascade from a removed message) keeps it right. A file row carries
-- its room (`room_id`, filled from its message on insert) so the count holds even when
-- the message row is already gone.
--
-- Write cost: the posts' hot path (`POST_BATCH`, `chat_post` without files) is unchanged
-- and fires no trigger. But the top-20 index on `last_seq - deleted_count` means a room's
-- `last_seq` bump is no longer a HOT update: each batch's room row update also writes an
-- entry in the room indexes (BENCHMARKS.md, "Search and the operator's numbers": within
-- the noise of a loaded machine).

ALTER TABLE chat_rooms
    ADD COLUMN deleted_count bigint NOT NULL DEFAULT 0,
    ADD COLUMN storage_bytes bigint NOT NULL DEFAULT 0;

ALTER TABLE chat_message_files ADD COLUMN room_id text;
UPDATE chat_message_files f SET room_id = m.room_id
FROM chat_messages m WHERE m.id = f.message_id;
ALTER TABLE chat_message_files ALTER COLUMN room_id SET NOT NULL;

-- Backfill, through `chat_messages_deleted` (tombstones only) and the files.
UPDATE chat_rooms r SET deleted_count = d.n
FROM (SELECT m.room_id, count(*) AS n FROM chat_messages m
      WHERE m.deleted_at IS NOT NULL GROUP BY m.room_id) d
WHERE r.id = d.room_id;
UPDATE chat_rooms r SET storage_bytes = s.bytes
FROM (SELECT f.room_id, sum(f.size) AS bytes FROM chat_message_files f GROUP BY f.room_id) s
WHERE r.id = s.room_id;

-- The top 20 rooms by messages and by storage, read from the front of these.
CREATE INDEX chat_rooms_by_messages ON chat_rooms ((last_seq - deleted_count) DESC, id);
CREATE INDEX chat_rooms_by_storage ON chat_rooms (storage_bytes DESC, id);

-- A tombstone counts once: `deleted_at` is set only by a delete, and never cleared. The
-- room's row is already locked by the delete (`chat_delete` bumps its `last_event` first).
CREATE FUNCTION chat_count_deleted() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    UPDATE chat_rooms r SET deleted_count = r.deleted_count + 1 WHERE r.id = NEW.room_id;
    RETURN NULL;
END $$;

CREATE TRIGGER chat_messages_count_deleted
    AFTER UPDATE OF deleted_at ON chat_messages
    FOR EACH ROW WHEN (OLD.deleted_at IS NULL AND NEW.deleted_at IS NOT NULL)
    EXECUTE FUNCTION chat_count_deleted();

-- A file row's room, from its message (whose row the send has just written).
CREATE FUNCTION chat_file_room() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.room_id IS NULL THEN
        SELECT m.room_id INTO NEW.room_id FROM chat_messages m WHERE m.id = NEW.message_id;
    END IF;
    RETURN NEW;
END $$;

CREATE TRIGGER chat_message_files_room
    BEFORE INSERT ON chat_message_files
    FOR EACH ROW EXECUTE FUNCTION chat_file_room();

-- Once per statement: the bytes each room gained or lost, one update per room.
CREATE FUNCTION chat_count_storage() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        UPDATE chat_rooms r SET storage_bytes = r.storage_bytes + c.bytes
        FROM (SELECT f.room_id, sum(f.size) AS bytes FROM chat_files_added f
              GROUP BY f.room_id) c
        WHERE r.id = c.room_id;
    ELSE
        UPDATE chat_rooms r SET storage_bytes = r.storage_bytes - c.bytes
        FROM (SELECT f.room_id, sum(f.size) AS bytes FROM chat_files_gone f
              GROUP BY f.room_id) c
        WHERE r.id = c.room_id;
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER chat_message_files_storage_added
    AFTER INSERT ON chat_message_files
    REFERENCING NEW TABLE AS chat_files_added
    FOR EACH STATEMENT EXECUTE FUNCTION chat_count_storage();

CREATE TRIGGER chat_message_files_storage_gone
    AFTER DELETE ON chat_message_files
    REFERENCING OLD TABLE AS chat_files_gone
    FOR EACH STATEMENT EXECUTE FUNCTION chat_count_storage();
