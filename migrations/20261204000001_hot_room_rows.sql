-- Every write to a room's log updates the room's row (`last_seq`, `last_event`), and keeps
-- it locked until commit. This migration makes that update a HOT one again: a new version
-- of the row on the same page, with no new index entry.
--
-- `chat_rooms_by_messages` indexed `last_seq - deleted_count`, which every post changes, so
-- no post's room update could be HOT. Each wrote a new entry in all four room indexes, and
-- the dead versions piled up behind each busy room's key. Every lookup of that room had to
-- walk them until vacuum came round: the write's own room update, its foreign-key checks
-- (`FOR KEY SHARE`), the stream hub's tick. Measured with 8 and 32 clients posting into 100
-- rooms, dropping it cut Postgres's CPU per post by 10–25 % (BENCHMARKS.md, "The room's
-- row, HOT again").
--
-- The top 20 rooms by messages (`GET /api/admin/stats`, `db::stats::TOP_BY_MESSAGES`) are
-- now a top-N sort over the room rows. That is what the totals beside them already read,
-- so it costs the operator's call little, and it costs the writes nothing.
DROP INDEX chat_rooms_by_messages;

-- A tombstone was counted by a row trigger, as a second update of the room's row in the
-- delete's transaction. `chat_delete` is the only statement that sets `deleted_at` (retention
-- and archiving remove rows and count them themselves), so it now counts its tombstone in
-- the room update it makes anyway.
DROP TRIGGER chat_messages_count_deleted ON chat_messages;
DROP FUNCTION chat_count_deleted();

-- DELETE a message, as before (`20261201000002_log_writes.sql`): same checks in the same
-- order, same locks (the message, then the bucket, the replies, the room), same events and
-- answer. Inline now, as `chat_post` is: the visibility check, the token and the answer
-- were three nested plpgsql calls, and the answer is built from the tombstone as written
-- (no reactions and no files are left on it).
CREATE OR REPLACE FUNCTION chat_delete(p_room text, p_id uuid, p_user text,
                                       p_action text, p_capacity float8, p_refill float8)
RETURNS chat_write LANGUAGE plpgsql AS $$
DECLARE
    v_owner text;
    v_tokens_left float8;
    v_tokens_before float8;
    v_message record;
    v_replies uuid[];
    v_event bigint;
    v_trashed text[];
    v_m record;
BEGIN
    SELECT r.created_by INTO v_owner FROM chat_rooms r
    WHERE r.id = p_room
      AND (r.visibility = 'public' OR r.created_by = p_user
           OR EXISTS (SELECT 1 FROM chat_room_members mm
                      WHERE mm.room_id = r.id AND mm.user_email = p_user));
    IF NOT FOUND THEN
        RETURN chat_write_outcome('room_not_found');
    END IF;
    SELECT m.user_email, m.deleted_at INTO v_message
    FROM chat_messages m WHERE m.id = p_id AND m.room_id = p_room
    FOR UPDATE;
    IF NOT FOUND THEN
        RETURN chat_write_outcome('message_not_found');
    ELSIF v_message.user_email <> p_user AND v_owner <> p_user THEN
        RETURN chat_write_outcome('not_message_author');
    ELSIF v_message.deleted_at IS NOT NULL THEN
        RETURN chat_write_message(p_id, p_user);
    END IF;

    -- A token from the user's bucket (`chat_take_token`, inline).
    INSERT INTO chat_rate_limits AS b (user_email, action, tokens, updated_at)
    VALUES (p_user, p_action, p_capacity - 1, now())
    ON CONFLICT (user_email, action) DO UPDATE
    SET tokens = LEAST(p_capacity, b.tokens + GREATEST(0, EXTRACT(EPOCH FROM now() - b.updated_at)) * p_refill) - 1,
        updated_at = GREATEST(now(), b.updated_at)
    WHERE LEAST(p_capacity, b.tokens + GREATEST(0, EXTRACT(EPOCH FROM now() - b.updated_at)) * p_refill) >= 1
    RETURNING b.tokens INTO v_tokens_left;
    IF v_tokens_left IS NULL THEN
        SELECT LEAST(p_capacity, b.tokens + GREATEST(0, EXTRACT(EPOCH FROM now() - b.updated_at)) * p_refill)
        INTO v_tokens_before
        FROM chat_rate_limits b WHERE b.user_email = p_user AND b.action = p_action;
        RETURN chat_write_outcome('rate_limited', v_tokens_before);
    END IF;

    -- The replies whose quotes are emptied, locked in seq order (messages before the room).
    v_replies := ARRAY(SELECT m.id FROM chat_messages m
                       WHERE m.reply_to = p_id AND m.reply_excerpt <> ''
                       ORDER BY m.seq FOR UPDATE);

    UPDATE chat_rooms r
    SET last_event = r.last_event + 1 + cardinality(v_replies),
        deleted_count = r.deleted_count + 1
    WHERE r.id = p_room
    RETURNING r.last_event INTO v_event;

    -- The tombstone takes the first of the new ids, the replies the rest in seq order.
    UPDATE chat_messages m
    SET content = '', reactions = '[]', deleted_at = now(),
        event_id = v_event - cardinality(v_replies)
    WHERE m.id = p_id
    RETURNING m.id, m.room_id, m.seq, m.event_id, m.created_event, m.user_email, m.content,
              m.client_id, m.created_at, m.edited_at, m.deleted_at, m.reply_to, m.reply_to_seq,
              m.reply_to_user, m.reply_excerpt, m.reply_count
    INTO v_m;
    UPDATE chat_messages m
    SET reply_excerpt = '', event_id = v_event - cardinality(v_replies) + r.n
    FROM unnest(v_replies) WITH ORDINALITY AS r(id, n)
    WHERE m.id = r.id;

    DELETE FROM chat_message_reactions x WHERE x.message_id = p_id;
    WITH gone AS (
        DELETE FROM chat_message_files f WHERE f.message_id = p_id RETURNING f.object_key
    ), queued AS (
        INSERT INTO chat_object_trash (object_key) SELECT gone.object_key FROM gone
        ON CONFLICT (object_key) DO NOTHING
    )
    SELECT COALESCE(array_agg(gone.object_key), '{}') INTO v_trashed FROM gone;

    PERFORM pg_notify('chat_messages', p_room || ':' || v_event);
    -- The tombstone as written: its reactions and files are gone, so none are the user's.
    RETURN ROW('ok', v_tokens_left, NULL, v_trashed,
               v_m.id, v_m.room_id, v_m.seq, v_m.event_id, v_m.created_event, v_m.user_email,
               v_m.content, v_m.client_id, v_m.created_at, v_m.edited_at, v_m.deleted_at,
               '[]'::jsonb, '{}'::text[],
               v_m.reply_to, v_m.reply_to_seq, v_m.reply_to_user, v_m.reply_excerpt,
               v_m.reply_count, '[]'::json)::chat_write;
END $$;

-- Deletes written together (`db::messages::DELETE_BATCH`) cannot also empty the quote of a
-- reply that the same statement makes a tombstone: one statement cannot change a row twice.
-- The batch calls this when it meets one, so it is undone whole, and the server sends each
-- of its deletes alone, as `chat_delete` (the write queue's answer to any failed batch).
CREATE FUNCTION chat_batch_clash() RETURNS boolean
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'a batch of deletes holds a reply and its original' USING ERRCODE = 'CH409';
END $$;

-- A post moves its author's read mark, and the mark's `updated_at` is indexed
-- (`chat_read_marks_user_updated`: the stream hub's "whose marks moved lately"), so every
-- post's mark update was a non-HOT one too. The hub re-reads every mark stamped in its last
-- 10 s (`realtime::MARK_WINDOW`) and tells each seq it has not told, so a mark stamped in the
-- last 2 s need not be stamped again for the move to be told: it keeps its stamp, and an
-- author posting again within 2 s moves their mark with a HOT update. A move is still seen
-- for at least 8 s, eight of the hub's ticks. `PUT /read` stamps every move, as before.
-- `chat_post`, as in `20261201000002_log_writes.sql`, with that one change (and
-- `POST_BATCH`, `db::messages`, the same); its answer's files name every field of a file
-- view, as `chat_write_message` has since `20261202000001_file_processing.sql`.
CREATE OR REPLACE FUNCTION chat_post(p_room text, p_id uuid, p_user text, p_content text, p_client_id uuid,
                          p_files uuid[], p_reply_to uuid,
                          p_action text, p_capacity float8, p_refill float8)
RETURNS chat_write LANGUAGE plpgsql AS $$
DECLARE
    v_tokens_left float8;
    v_tokens_before float8;
    v_parent_seq bigint;
    v_parent_user text;
    v_parent_excerpt text;
    v_parent_deleted timestamptz;
    v_seq bigint;
    v_event bigint;
    v_created timestamptz;
    v_attached bigint;
    v_files json := '[]';
BEGIN
    IF p_reply_to IS NOT NULL THEN
        -- The original is checked (and locked) only in a room the author may see, so a
        -- hidden room's message ids are not probed.
        IF chat_visible_owner(p_room, p_user) IS NULL THEN
            RETURN chat_write_outcome('room_not_found');
        END IF;
        SELECT m.seq, m.user_email, left(m.content, 100), m.deleted_at
        INTO v_parent_seq, v_parent_user, v_parent_excerpt, v_parent_deleted
        FROM chat_messages m WHERE m.id = p_reply_to AND m.room_id = p_room
        FOR UPDATE;
        IF NOT FOUND THEN
            RETURN chat_write_outcome('reply_to_invalid');
        ELSIF v_parent_deleted IS NOT NULL THEN
            RETURN chat_write_outcome('message_deleted');
        END IF;
    END IF;

    -- A token from the author's bucket (`chat_take_token`, inline).
    INSERT INTO chat_rate_limits AS b (user_email, action, tokens, updated_at)
    VALUES (p_user, p_action, p_capacity - 1, now())
    ON CONFLICT (user_email, action) DO UPDATE
    SET tokens = LEAST(p_capacity, b.tokens + GREATEST(0, EXTRACT(EPOCH FROM now() - b.updated_at)) * p_refill) - 1,
        updated_at = GREATEST(now(), b.updated_at)
    WHERE LEAST(p_capacity, b.tokens + GREATEST(0, EXTRACT(EPOCH FROM now() - b.updated_at)) * p_refill) >= 1
    RETURNING b.tokens INTO v_tokens_left;
    IF v_tokens_left IS NULL THEN
        SELECT LEAST(p_capacity, b.tokens + GREATEST(0, EXTRACT(EPOCH FROM now() - b.updated_at)) * p_refill)
        INTO v_tokens_before
        FROM chat_rate_limits b WHERE b.user_email = p_user AND b.action = p_action;
        RETURN chat_write_outcome('rate_limited', v_tokens_before);
    END IF;

    -- A reply also changes its original (`reply_count`): two events.
    UPDATE chat_rooms r
    SET last_seq = r.last_seq + 1,
        last_event = r.last_event + CASE WHEN p_reply_to IS NULL THEN 1 ELSE 2 END
    WHERE r.id = p_room
      AND (r.visibility = 'public' OR r.created_by = p_user
           OR EXISTS (SELECT 1 FROM chat_room_members mm
                      WHERE mm.room_id = r.id AND mm.user_email = p_user))
    RETURNING r.last_seq, r.last_event INTO v_seq, v_event;
    IF NOT FOUND THEN
        RETURN chat_write_outcome('room_not_found');
    END IF;

    IF p_reply_to IS NOT NULL THEN
        UPDATE chat_messages m SET reply_count = m.reply_count + 1, event_id = v_event - 1
        WHERE m.id = p_reply_to;
    END IF;

    INSERT INTO chat_messages (id, room_id, seq, event_id, created_event, user_email, content,
                               client_id, reply_to, reply_to_seq, reply_to_user, reply_excerpt)
    VALUES (p_id, p_room, v_seq, v_event, v_event, p_user, p_content, p_client_id, p_reply_to,
            v_parent_seq, v_parent_user, v_parent_excerpt)
    RETURNING created_at INTO v_created;

    IF cardinality(p_files) > 0 THEN
        WITH moved AS (
            DELETE FROM chat_uploads u
            WHERE u.id = ANY(p_files) AND u.room_id = p_room AND u.user_email = p_user
            RETURNING u.id, u.object_key, u.file_name, u.content_type, u.size
        )
        INSERT INTO chat_message_files (id, message_id, object_key, file_name, content_type, size)
        SELECT moved.id, p_id, 'attached/' || moved.object_key, moved.file_name, moved.content_type,
               moved.size
        FROM moved;
        GET DIAGNOSTICS v_attached = ROW_COUNT;
        IF v_attached <> cardinality(p_files) THEN
            -- An upload was attached by a concurrent send: this one fails whole.
            RAISE EXCEPTION 'invalid_upload' USING ERRCODE = 'CH400';
        END IF;
        SELECT COALESCE(json_agg(json_build_object(
                   'id', f.id, 'object_key', f.object_key, 'file_name', f.file_name,
                   'content_type', f.content_type, 'size', f.size,
                   'width', f.width, 'height', f.height, 'thumbnail_key', f.thumbnail_key,
                   'placeholder', f.placeholder, 'served', f.served,
                   'served_size', f.served_size) ORDER BY f.id), '[]'::json)
        INTO v_files
        FROM chat_message_files f WHERE f.message_id = p_id;
    END IF;

    -- The author has read their own message. A mark stamped in the last 2 s keeps its
    -- stamp (see above).
    INSERT INTO chat_read_marks AS k (room_id, user_email, last_read_seq)
    VALUES (p_room, p_user, v_seq)
    ON CONFLICT (room_id, user_email) DO UPDATE
    SET last_read_seq = EXCLUDED.last_read_seq,
        updated_at = CASE WHEN k.updated_at > now() - interval '2 seconds' THEN k.updated_at
                          ELSE now() END
    WHERE k.last_read_seq < EXCLUDED.last_read_seq;

    PERFORM pg_notify('chat_messages', p_room || ':' || v_event);
    -- The message as written: a new one has no reactions (so none of the author's), no
    -- replies, no edit and no tombstone.
    RETURN ROW('ok', v_tokens_left, NULL, NULL,
               p_id, p_room, v_seq, v_event, v_event, p_user, p_content, p_client_id, v_created,
               NULL, NULL, '[]'::jsonb, '{}'::text[],
               p_reply_to, v_parent_seq, v_parent_user, v_parent_excerpt, 0, v_files)::chat_write;
END $$;
