-- What processing an attached image found (`shared/src/media/`): its size, its thumbnail,
-- a placeholder, and which bytes its url serves.
--
-- `served` is NULL until processing has recorded its result, then:
--   'original' the uploaded bytes (not an image we process, or processing refused it:
--              a decompression bomb, a truncated file, bytes that are not the declared type);
--   'stripped' re-encoded at its own size, metadata (EXIF, GPS, XMP) removed, orientation
--              applied;
--   'resized'  the same, scaled down to `IMAGE_MAX_PX` on the long side.
-- A stripped or resized copy replaces the bytes at the file's `object_key` (an `attached/`
-- key, which no presigned PUT names), so every url ever handed out serves it; `size` stays
-- the upload's, `served_size` is what the url serves.
--
-- Files attached before this migration read 'original' (the column's missing value for
-- existing rows), files attached after start as NULL.
ALTER TABLE chat_message_files
    ADD COLUMN width         integer,
    ADD COLUMN height        integer,
    ADD COLUMN thumbnail_key text,
    ADD COLUMN placeholder   text,
    ADD COLUMN served_size   bigint,
    ADD COLUMN served        text DEFAULT 'original',
    ADD CONSTRAINT chat_message_files_served_check
        CHECK (served IN ('original', 'stripped', 'resized'));
ALTER TABLE chat_message_files ALTER COLUMN served DROP DEFAULT;

-- Images still waiting for processing, oldest first, for the cleanup cron's sweep
-- (`db::files::UNPROCESSED`, whose predicate is this one, written out the same): a send's
-- processing that never finished (an AWS Lambda sandbox frozen or reclaimed after the
-- response, a crash, a deploy). Only processable types, so other files never enter it.
CREATE INDEX idx_chat_message_files_unprocessed ON chat_message_files (created_at)
    WHERE served IS NULL
      AND content_type IN ('image/jpeg', 'image/png', 'image/gif', 'image/webp');

-- A file's thumbnail goes with it: when a delete removes the file's row, its thumbnail is
-- queued for the cleanup cron (`chat_delete` returns, and the server deletes at once, only
-- the file's own key).
CREATE FUNCTION chat_trash_thumbnail() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO chat_object_trash (object_key) VALUES (OLD.thumbnail_key)
    ON CONFLICT (object_key) DO NOTHING;
    RETURN NULL;
END $$;

CREATE TRIGGER chat_message_files_trash_thumbnail
    AFTER DELETE ON chat_message_files
    FOR EACH ROW WHEN (OLD.thumbnail_key IS NOT NULL)
    EXECUTE FUNCTION chat_trash_thumbnail();

-- The answer of every log write shows the processed fields too (the same object as the
-- queries in shared/src/db/messages.rs build).
CREATE OR REPLACE FUNCTION chat_write_message(p_id uuid, p_viewer text, p_tokens_left float8 DEFAULT NULL,
                                              p_trashed text[] DEFAULT NULL)
RETURNS chat_write LANGUAGE plpgsql STABLE AS $$
DECLARE
    v_out chat_write;
BEGIN
    SELECT 'ok', p_tokens_left, NULL, p_trashed,
           m.id, m.room_id, m.seq, m.event_id, m.created_event, m.user_email, m.content,
           m.client_id, m.created_at, m.edited_at, m.deleted_at, m.reactions,
           CASE WHEN m.reactions = '[]' THEN '{}'::text[]
                ELSE ARRAY(SELECT x.emoji FROM chat_message_reactions x
                           WHERE x.message_id = m.id AND x.user_email = p_viewer
                           ORDER BY x.created_at) END,
           m.reply_to, m.reply_to_seq, m.reply_to_user, m.reply_excerpt, m.reply_count,
           (SELECT COALESCE(json_agg(json_build_object(
                       'id', f.id, 'object_key', f.object_key, 'file_name', f.file_name,
                       'content_type', f.content_type, 'size', f.size,
                       'width', f.width, 'height', f.height, 'thumbnail_key', f.thumbnail_key,
                       'placeholder', f.placeholder, 'served', f.served,
                       'served_size', f.served_size) ORDER BY f.id), '[]'::json)
            FROM chat_message_files f WHERE f.message_id = m.id)
    INTO v_out
    FROM chat_messages m WHERE m.id = p_id;
    RETURN v_out;
END $$;

-- Records what processing found for the files of message `p_message`: `p_files` is a JSON
-- array of `{id, width, height, thumbnail_key, placeholder, served, served_size}`. Like
-- every change to a message it is an event of the room's log: under the message's row lock,
-- then the room's (the order every write takes), it takes the room's next event id, stamps
-- the message with it and notifies, so subscribers get the message again once, as
-- `message.updated`. Returns
--   'ok'   recorded, one event;
--   'done' every one of these files was recorded already (a second run): nothing changes;
--   'gone' the message was deleted, or the files are no longer its: the caller deletes what
--          it wrote to storage.
CREATE FUNCTION chat_file_processed(p_message uuid, p_files jsonb) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    v_room text;
    v_recorded bigint;
    v_event bigint;
BEGIN
    SELECT m.room_id INTO v_room FROM chat_messages m
    WHERE m.id = p_message AND m.deleted_at IS NULL
    FOR UPDATE;
    IF NOT FOUND THEN
        RETURN 'gone';
    END IF;
    IF NOT EXISTS (SELECT 1 FROM chat_message_files f
                   JOIN jsonb_to_recordset(p_files) AS r(id uuid) ON r.id = f.id
                   WHERE f.message_id = p_message) THEN
        RETURN 'gone';
    END IF;

    UPDATE chat_message_files f
    SET width = r.width, height = r.height, thumbnail_key = r.thumbnail_key,
        placeholder = r.placeholder, served = r.served, served_size = r.served_size
    FROM jsonb_to_recordset(p_files)
         AS r(id uuid, width integer, height integer, thumbnail_key text, placeholder text,
              served text, served_size bigint)
    WHERE f.id = r.id AND f.message_id = p_message AND f.served IS NULL;
    GET DIAGNOSTICS v_recorded = ROW_COUNT;
    IF v_recorded = 0 THEN
        RETURN 'done';
    END IF;

    UPDATE chat_rooms r SET last_event = r.last_event + 1 WHERE r.id = v_room
    RETURNING r.last_event INTO v_event;
    UPDATE chat_messages m SET event_id = v_event WHERE m.id = p_message;

    PERFORM pg_notify('chat_messages', v_room || ':' || v_event);
    RETURN 'ok';
END $$;
