-- The top rooms by messages (`GET /api/admin/stats`, `db::stats::TOP_BY_MESSAGES`) from an
-- index on a value a post rarely changes.
--
-- `chat_rooms_by_messages` (20261203000002) indexed `last_seq - deleted_count`, and every
-- post bumps its room's `last_seq`. So no post's room update was HOT: each wrote a new entry
-- in every index of `chat_rooms` and left a dead one, and a busy room's index entries bloated
-- until vacuum. That was 35 % of Postgres's CPU per post at 8 clients (BENCHMARKS.md, "Where
-- the 8-client gap comes from").
--
-- Instead, a room has a size class: 0 for no messages, else 1 + floor(log1.25(messages)),
-- generated from the count. Postgres keeps an update HOT when no indexed value changes, so a
-- post writes index entries only when its room changes class, about once per 25 % growth.
-- The class rises with the count, so every room among the top N by messages has at least
-- the class of the N-th room in class order. The top list reads that class from the front
-- of the index, then ranks the rooms of that class or more by their exact count.
CREATE FUNCTION chat_size_class(messages bigint) RETURNS smallint
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN messages < 1 THEN 0::smallint
                ELSE (1 + floor(ln(messages::float8) / ln(1.25::float8)))::smallint END
$$;

ALTER TABLE chat_rooms ADD COLUMN size_class smallint NOT NULL
    GENERATED ALWAYS AS (chat_size_class(last_seq - deleted_count)) STORED;

DROP INDEX chat_rooms_by_messages;
CREATE INDEX chat_rooms_by_size_class ON chat_rooms (size_class DESC, id);
