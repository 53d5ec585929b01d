-- Full-text search of a room's messages (`GET /api/rooms/{room}/search`,
-- `db::messages::SEARCH`).
--
-- What is searched is `chat_search_vector(content)`: the words of a message as the text
-- search configuration named below parses them. The index is an expression index, so no
-- column is added and no row grows; a query finds it by writing the same expression
-- (Postgres inlines this SQL function on both sides, so the planner matches
-- `to_tsvector('simple', content)`). Tombstones have content '' and so no entry: a deleted
-- message is never found, and an edit re-indexes the new content.
--
-- The language is part of the index. `SEARCH_LANGUAGE` (the server's setting, default
-- `simple`) is the configuration a query is parsed with, and must name the same one as this
-- function, or words that stem differently are missed. To change it, on a live database:
--
--   CREATE OR REPLACE FUNCTION chat_search_vector(content text) RETURNS tsvector
--   LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$ SELECT to_tsvector('english'::regconfig, content) $$;
--   REINDEX INDEX CONCURRENTLY chat_messages_search;
--
-- then set `SEARCH_LANGUAGE=english` and redeploy. `simple` lowercases and splits words and
-- stems nothing, so it finds the words as written in any language.
--
-- Write cost: every new row version of a message (a post, and also an edit, a reaction or
-- a reply's count, which already write new versions since `event_id` is indexed) adds its
-- words to this index. `fastupdate` (Postgres's default, written out here) queues them in
-- the index's pending list, so an insert appends there instead of updating each word's
-- posting tree; the list is merged by autovacuum, or by the insert that finds it past
-- `gin_pending_list_limit` (4 MB), and a search reads it too. BENCHMARKS.md ("Search and
-- the operator's numbers") has what this costs a batched write.
--
-- On a large table, build the index beforehand without blocking writes
-- (`CREATE INDEX CONCURRENTLY chat_messages_search ON chat_messages USING gin
-- (chat_search_vector(content)) WITH (fastupdate = on)` after creating the function);
-- this migration then finds it and skips the build.

CREATE FUNCTION chat_search_vector(content text) RETURNS tsvector
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT to_tsvector('simple'::regconfig, content)
$$;

CREATE INDEX IF NOT EXISTS chat_messages_search ON chat_messages
    USING gin (chat_search_vector(content)) WITH (fastupdate = on);
