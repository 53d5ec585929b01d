-- An attached file's bytes are fixed: before posting, the send copies each upload from its
-- staging key (`rooms/{room}/{upload id}.{ext}`, which its presigned PUT can write for 15
-- minutes) to `attached/` + that key, which no presigned URL names (`storage::attached_key`).
-- `chat_post` now records that key in `chat_message_files`; everything else is as in
-- 20261201000002_log_writes.sql. Files attached before keep their keys.

CREATE OR REPLACE FUNCTION chat_post(p_room text, p_id uuid, p_user text, p_content text, p_client_id uuid,
                          p_files uuid[], p_reply_to uuid,
                          p_action text, p_capacity float8, p_refill float8)
RETURNS chat_write LANGUAGE plpgsql AS $$
DECLARE
    v_token record;
    v_parent_seq bigint;
    v_parent_user text;
    v_parent_excerpt text;
    v_parent_deleted timestamptz;
    v_seq bigint;
    v_event bigint;
    v_attached bigint;
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

    v_token := chat_take_token(p_user, p_action, p_capacity, p_refill);
    IF v_token.tokens_left IS NULL THEN
        RETURN chat_write_outcome('rate_limited', v_token.tokens_before);
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
            v_parent_seq, v_parent_user, v_parent_excerpt);

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
    END IF;

    -- The author has read their own message.
    INSERT INTO chat_read_marks AS k (room_id, user_email, last_read_seq)
    VALUES (p_room, p_user, v_seq)
    ON CONFLICT (room_id, user_email) DO UPDATE
    SET last_read_seq = EXCLUDED.last_read_seq, updated_at = now()
    WHERE k.last_read_seq < EXCLUDED.last_read_seq;

    PERFORM pg_notify('chat_messages', p_room || ':' || v_event);
    RETURN chat_write_message(p_id, p_user, v_token.tokens_left);
END $$;
