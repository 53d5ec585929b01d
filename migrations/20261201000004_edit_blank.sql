-- An edit's content is blank by the same rule as a post's (`MessageContent::parse`, Rust's
-- `str::trim`): every Unicode White_Space character, not just space, tab, CR and LF. Before
-- this, an edit to "\u{3000}" or "\u{a0}" of a message without files was accepted, though
-- a post of it is refused as blank.

-- Unicode's White_Space characters (what Rust's `char::is_whitespace` tests).
CREATE FUNCTION chat_white_space() RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT E'\u0009\u000A\u000B\u000C\u000D\u0020\u0085\u00A0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200A\u2028\u2029\u202F\u205F\u3000'
$$;

-- PATCH a message's content: the author only, not a tombstone; blank content only when it
-- has files.
CREATE OR REPLACE FUNCTION chat_edit(p_room text, p_id uuid, p_user text, p_content text,
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
