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
