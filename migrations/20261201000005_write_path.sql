-- The log's write path, cheaper (issue 11, BENCHMARKS.md "The log's write path"). Same
-- functions, same signatures, same results, same guarantees; less work per write.
--
-- 1. No SQL-language function is called from a write any more. Postgres 15 does not keep
--    the plan of a SQL function's body across statements: every call from plpgsql parsed,
--    analysed and planned `chat_write_message` (with `chat_message_out` inlined into it)
--    and `chat_visible_owner` again, on every write. They are plpgsql now, whose plans
--    each session keeps.
-- 2. A post answers from what it wrote (the values it inserted and `created_at` from
--    `RETURNING`) instead of reading the message back: a new message has no reactions,
--    no replies, and files only when it attached some (read then).
-- 3. A post takes its token inline (one nested function call less).
-- 4. `idx_chat_messages_user` (user_email) served no query: no statement of the API reads
--    messages by author (a retried send looks up `(room_id, client_id)`). The name is the
--    deployed system's and stays; the index now covers tombstones only (a user's deleted
--    messages), so posts, edits and reactions no longer write an entry to it.

DROP INDEX idx_chat_messages_user;
CREATE INDEX idx_chat_messages_user ON chat_messages (user_email) WHERE deleted_at IS NOT NULL;

-- Room `p_room` as user `p_user` may see it: its owner, or NULL.
CREATE OR REPLACE FUNCTION chat_visible_owner(p_room text, p_user text) RETURNS text
LANGUAGE plpgsql STABLE AS $$
DECLARE
    v_owner text;
BEGIN
    SELECT r.created_by INTO v_owner FROM chat_rooms r
    WHERE r.id = p_room
      AND (r.visibility = 'public' OR r.created_by = p_user
           OR EXISTS (SELECT 1 FROM chat_room_members mm
                      WHERE mm.room_id = r.id AND mm.user_email = p_user));
    RETURN v_owner;
END $$;

-- An answer with the message as `p_viewer` sees it (the columns of `chat_message_out`).
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
                       'content_type', f.content_type, 'size', f.size) ORDER BY f.id), '[]'::json)
            FROM chat_message_files f WHERE f.message_id = m.id)
    INTO v_out
    FROM chat_messages m WHERE m.id = p_id;
    RETURN v_out;
END $$;

-- POST a message (as in 20261201000003_attached_files.sql: the same steps and answers).
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
                   'content_type', f.content_type, 'size', f.size) ORDER BY f.id), '[]'::json)
        INTO v_files
        FROM chat_message_files f WHERE f.message_id = p_id;
    END IF;

    -- The author has read their own message.
    INSERT INTO chat_read_marks AS k (room_id, user_email, last_read_seq)
    VALUES (p_room, p_user, v_seq)
    ON CONFLICT (room_id, user_email) DO UPDATE
    SET last_read_seq = EXCLUDED.last_read_seq, updated_at = now()
    WHERE k.last_read_seq < EXCLUDED.last_read_seq;

    PERFORM pg_notify('chat_messages', p_room || ':' || v_event);
    -- The message as written: a new one has no reactions (so none of the author's), no
    -- replies, no edit and no tombstone.
    RETURN ROW('ok', v_tokens_left, NULL, NULL,
               p_id, p_room, v_seq, v_event, v_event, p_user, p_content, p_client_id, v_created,
               NULL, NULL, '[]'::jsonb, '{}'::text[],
               p_reply_to, v_parent_seq, v_parent_user, v_parent_excerpt, 0, v_files)::chat_write;
END $$;
