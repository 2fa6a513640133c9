-- The engine's own tables on Postgres. Times are unix milliseconds, JSON is TEXT, so the
-- same queries read both backends through sqlx's Any driver.

CREATE TABLE dead_letters (
    id          TEXT COLLATE "C" PRIMARY KEY,  -- uuid v7; byte order = creation order
    route       TEXT NOT NULL,
    step        TEXT,
    error       TEXT NOT NULL,
    attempts    BIGINT NOT NULL,
    message     TEXT NOT NULL,                 -- the Message as JSON
    created_at  BIGINT NOT NULL,
    replayed_at BIGINT
);
CREATE INDEX dead_letters_route_id ON dead_letters (route, id);

CREATE TABLE checkpoints (
    name       TEXT PRIMARY KEY,
    value      TEXT NOT NULL,
    updated_at BIGINT NOT NULL
);

-- Sequence values are never reused, so a committed offset never hides a later message.
-- Publishers take a per-topic advisory lock so offsets also become visible in order.
CREATE TABLE bus_messages (
    seq        BIGSERIAL PRIMARY KEY,
    topic      TEXT NOT NULL,
    message    TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX bus_messages_topic_seq ON bus_messages (topic, seq);

CREATE TABLE bus_offsets (
    consumer_group TEXT NOT NULL,
    topic          TEXT NOT NULL,
    committed      BIGINT NOT NULL,            -- every offset up to this one is processed
    updated_at     BIGINT NOT NULL,
    PRIMARY KEY (consumer_group, topic)
);
