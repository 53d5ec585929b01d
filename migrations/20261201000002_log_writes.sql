-- The writes to a room's log, one function each: a post, an edit, a delete, a reaction
-- change. Each runs as ONE statement from the server (one round trip, the room's row lock
-- never held across the network) and:
--
-- 1. checks what needs no lock: the room is visible to the user (public, theirs, or with
--    them as a member; a hidden room is reported as missing);
-- 2. locks the message rows it changes (`FOR UPDATE`), always before the room's row, so
--    two writers never wait on each other in a cycle;
-- 3. decides: an error or a no-op changes nothing (no token, no event);
-- 4. takes a token from the user's bucket for the action (`chat_take_token`);
-- 5. takes the room's next event ids (`last_event`, and for a post `last_seq`) under the
--    room's row lock, which it holds until commit, so commit order is event-id order;
-- 6. writes, stamping each changed message with its event id, and `pg_notify`s listeners
--    `room:last_event` (delivered at commit).
--
-- Functions are VOLATILE: each statement inside sees everything committed before it, and
-- once the room's row is locked nobody else changes that room's log until we commit.
-- Each returns `outcome` ('ok', or an error code for the API), the bucket (`tokens_left`,
-- or `tokens_before` when refused), `trashed` (object keys to delete from storage) and the
-- message as the user sees it (`chat_write_message`).
--
-- Everything a write calls is plpgsql (or an IMMUTABLE constant), never a SQL-language
-- function with a query: Postgres 15 parses and plans a SQL function's body again on every
-- call from plpgsql, while plpgsql keeps each statement's plan for the session
-- (BENCHMARKS.md, "The log's write path").

-- Takes a token from the (user, action) bucket: `capacity` tokens, refilled at `refill` per
-- second. `tokens_left` is NULL when fewer than one was there; `tokens_before` is then the
-- bucket refilled to now (for `Retry-After`).
CREATE FUNCTION chat_take_token(p_user text, p_action text, p_capacity float8, p_refill float8,
                                OUT tokens_left float8, OUT tokens_before float8)
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO chat_rate_limits AS b (user_email, action, tokens, updated_at)
    VALUES (p_user, p_action, p_capacity - 1, now())
    ON CONFLICT (user_email, action) DO UPDATE
    SET tokens = LEAST(p_capacity, b.tokens + GREATEST(0, EXTRACT(EPOCH FROM now() - b.updated_at)) * p_refill) - 1,
        updated_at = GREATEST(now(), b.updated_at)
    WHERE LEAST(p_capacity, b.tokens + GREATEST(0, EXTRACT(EPOCH FROM now() - b.updated_at)) * p_refill) >= 1
    RETURNING b.tokens INTO tokens_left;
    IF tokens_left IS NULL THEN
        SELECT LEAST(p_capacity, b.tokens + GREATEST(0, EXTRACT(EPOCH FROM now() - b.updated_at)) * p_refill)
        INTO tokens_before
        FROM chat_rate_limits b WHERE b.user_email = p_user AND b.action = p_action;
    END IF;
END $$;

-- Room `p_room` as user `p_user` may see it: its owner, or NULL.
CREATE FUNCTION chat_visible_owner(p_room text, p_user text) RETURNS text
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

-- What every log write returns.
CREATE TYPE chat_write AS (
    outcome text, tokens_left float8, tokens_before float8, trashed text[],
    id uuid, room_id text, seq bigint, event_id bigint, created_event bigint,
    user_email text, content text, client_id uuid, created_at timestamptz,
    edited_at timestamptz, deleted_at timestamptz, reactions jsonb, mine text[],
    reply_to uuid, reply_to_seq bigint, reply_to_user text, reply_excerpt text,
    reply_count integer, files json
);

-- An answer with no message: an error code, or a refused token.
CREATE FUNCTION chat_write_outcome(p_outcome text, p_tokens_before float8 DEFAULT NULL)
RETURNS chat_write LANGUAGE sql IMMUTABLE AS $$
    SELECT ROW(p_outcome, NULL, p_tokens_before, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
               NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL)::chat_write
$$;

-- An answer with the message as `p_viewer` sees it: the API's Message, less signed URLs;
-- `mine` lists the viewer's own reactions (for `me`).
CREATE FUNCTION chat_write_message(p_id uuid, p_viewer text, p_tokens_left float8 DEFAULT NULL,
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

-- POST a message: `p_reply_to` may name a message of the room; `p_files` are the author's
-- pending uploads for the room, all attached or the whole post fails ('invalid_upload').
-- An attached file's bytes are fixed: before posting, the send copies each upload from its
-- staging key (`rooms/{room}/{upload id}.{ext}`, which its presigned PUT can write for 15
-- minutes) to `attached/` + that key, which no presigned URL names (`storage::attached_key`),
-- and that key is recorded. A repeated `p_client_id` fails with a unique violation of
-- `chat_messages_room_client_id_key`, undoing everything. The answer is built from what was
-- written (a new message has no reactions, no replies, no edit), not read back.
CREATE FUNCTION chat_post(p_room text, p_id uuid, p_user text, p_content text, p_client_id uuid,
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

-- Unicode's White_Space characters (what Rust's `char::is_whitespace` tests): an edit's
-- content is blank by the same rule as a post's (`MessageContent::parse`, `str::trim`).
CREATE FUNCTION chat_white_space() RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT E'\u0009\u000A\u000B\u000C\u000D\u0020\u0085\u00A0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200A\u2028\u2029\u202F\u205F\u3000'
$$;

-- PATCH a message's content: the author only, not a tombstone; blank content only when it
-- has files.
CREATE FUNCTION chat_edit(p_room text, p_id uuid, p_user text, p_content text,
                          p_action text, p_capacity float8, p_refill float8)
RETURNS chat_write LANGUAGE plpgsql AS $$
DECLARE
    v_token record;
    v_message record;
    v_event bigint;
BEGIN
    IF chat_visible_owner(p_room, p_user) IS NULL THEN
        RETURN chat_write_outcome('room_not_found');
    END IF;
    SELECT m.user_email, m.deleted_at INTO v_message
    FROM chat_messages m WHERE m.id = p_id AND m.room_id = p_room
    FOR UPDATE;
    IF NOT FOUND THEN
        RETURN chat_write_outcome('message_not_found');
    ELSIF v_message.user_email <> p_user THEN
        RETURN chat_write_outcome('not_message_author');
    ELSIF v_message.deleted_at IS NOT NULL THEN
        RETURN chat_write_outcome('message_deleted');
    ELSIF btrim(p_content, chat_white_space()) = ''
          AND NOT EXISTS (SELECT 1 FROM chat_message_files f WHERE f.message_id = p_id) THEN
        RETURN chat_write_outcome('content_required');
    END IF;

    v_token := chat_take_token(p_user, p_action, p_capacity, p_refill);
    IF v_token.tokens_left IS NULL THEN
        RETURN chat_write_outcome('rate_limited', v_token.tokens_before);
    END IF;

    UPDATE chat_rooms r SET last_event = r.last_event + 1 WHERE r.id = p_room
    RETURNING r.last_event INTO v_event;
    UPDATE chat_messages m SET content = p_content, edited_at = now(), event_id = v_event
    WHERE m.id = p_id;

    PERFORM pg_notify('chat_messages', p_room || ':' || v_event);
    RETURN chat_write_message(p_id, p_user, v_token.tokens_left);
END $$;

-- DELETE a message: its author or the room's owner. The row stays as a tombstone (seq and
-- place kept; content, files and reactions gone); its replies' quotes are emptied, each an
-- event of its own. Its files' object keys are queued in `chat_object_trash` and returned
-- in `trashed` for the server to delete from storage. Deleting a tombstone changes nothing.
CREATE FUNCTION chat_delete(p_room text, p_id uuid, p_user text,
                            p_action text, p_capacity float8, p_refill float8)
RETURNS chat_write LANGUAGE plpgsql AS $$
DECLARE
    v_owner text;
    v_token record;
    v_message record;
    v_replies uuid[];
    v_event bigint;
    v_trashed text[];
BEGIN
    v_owner := chat_visible_owner(p_room, p_user);
    IF v_owner IS NULL THEN
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

    v_token := chat_take_token(p_user, p_action, p_capacity, p_refill);
    IF v_token.tokens_left IS NULL THEN
        RETURN chat_write_outcome('rate_limited', v_token.tokens_before);
    END IF;

    -- The replies whose quotes are emptied, locked in seq order (messages before the room).
    v_replies := ARRAY(SELECT m.id FROM chat_messages m
                       WHERE m.reply_to = p_id AND m.reply_excerpt <> ''
                       ORDER BY m.seq FOR UPDATE);

    UPDATE chat_rooms r SET last_event = r.last_event + 1 + cardinality(v_replies)
    WHERE r.id = p_room
    RETURNING r.last_event INTO v_event;

    -- The tombstone takes the first of the new ids, the replies the rest in seq order.
    UPDATE chat_messages m
    SET content = '', reactions = '[]', deleted_at = now(),
        event_id = v_event - cardinality(v_replies)
    WHERE m.id = p_id;
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
    RETURN chat_write_message(p_id, p_user, v_token.tokens_left, v_trashed);
END $$;

-- PUT (`p_add`) or DELETE the user's `p_emoji` reaction. Idempotent: adding one already
-- there, or removing one that is not, changes nothing (no token, no event). At most
-- `p_max_emoji` distinct emoji per message ('too_many_reactions').
CREATE FUNCTION chat_react(p_room text, p_id uuid, p_user text, p_emoji text, p_add boolean,
                           p_max_emoji integer,
                           p_action text, p_capacity float8, p_refill float8)
RETURNS chat_write LANGUAGE plpgsql AS $$
DECLARE
    v_token record;
    v_message record;
    v_event bigint;
    v_has boolean;
BEGIN
    IF chat_visible_owner(p_room, p_user) IS NULL THEN
        RETURN chat_write_outcome('room_not_found');
    END IF;
    SELECT m.deleted_at, m.reactions INTO v_message
    FROM chat_messages m WHERE m.id = p_id AND m.room_id = p_room
    FOR UPDATE;
    IF NOT FOUND THEN
        RETURN chat_write_outcome('message_not_found');
    ELSIF v_message.deleted_at IS NOT NULL THEN
        -- A tombstone has no reactions: removing one is already done.
        IF p_add THEN
            RETURN chat_write_outcome('message_deleted');
        END IF;
        RETURN chat_write_message(p_id, p_user);
    END IF;
    v_has := EXISTS (SELECT 1 FROM chat_message_reactions x
                     WHERE x.message_id = p_id AND x.user_email = p_user AND x.emoji = p_emoji);
    IF v_has = p_add THEN
        RETURN chat_write_message(p_id, p_user);
    ELSIF p_add AND jsonb_array_length(v_message.reactions) >= p_max_emoji
          AND NOT jsonb_path_exists(v_message.reactions, '$[*] ? (@.emoji == $e)',
                                    jsonb_build_object('e', p_emoji)) THEN
        RETURN chat_write_outcome('too_many_reactions');
    END IF;

    v_token := chat_take_token(p_user, p_action, p_capacity, p_refill);
    IF v_token.tokens_left IS NULL THEN
        RETURN chat_write_outcome('rate_limited', v_token.tokens_before);
    END IF;

    UPDATE chat_rooms r SET last_event = r.last_event + 1 WHERE r.id = p_room
    RETURNING r.last_event INTO v_event;
    IF p_add THEN
        INSERT INTO chat_message_reactions (message_id, user_email, emoji)
        VALUES (p_id, p_user, p_emoji);
    ELSE
        DELETE FROM chat_message_reactions x
        WHERE x.message_id = p_id AND x.user_email = p_user AND x.emoji = p_emoji;
    END IF;
    -- The counts, in first-reacted order, kept on the row: a new emoji goes last, a count
    -- that drops to zero leaves. O(distinct emoji), whatever the number of reactions.
    UPDATE chat_messages m
    SET event_id = v_event,
        reactions = CASE
            WHEN p_add AND NOT jsonb_path_exists(m.reactions, '$[*] ? (@.emoji == $e)',
                                                 jsonb_build_object('e', p_emoji))
            THEN m.reactions || jsonb_build_array(jsonb_build_object('emoji', p_emoji, 'count', 1))
            ELSE COALESCE((
                SELECT jsonb_agg(t.e ORDER BY t.ord)
                FROM (SELECT CASE WHEN x.e->>'emoji' = p_emoji
                                  THEN jsonb_set(x.e, '{count}',
                                                 to_jsonb((x.e->>'count')::int + CASE WHEN p_add THEN 1 ELSE -1 END))
                                  ELSE x.e END AS e,
                             x.ord
                      FROM jsonb_array_elements(m.reactions) WITH ORDINALITY AS x(e, ord)) t
                WHERE (t.e->>'count')::int > 0), '[]')
        END
    WHERE m.id = p_id;

    PERFORM pg_notify('chat_messages', p_room || ':' || v_event);
    RETURN chat_write_message(p_id, p_user, v_token.tokens_left);
END $$;
