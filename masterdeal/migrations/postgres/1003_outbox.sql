-- The transactional outbox: each domain change appends its event in the same transaction,
-- and a relay publishes unpublished rows in `seq` order. `aggregate_seq` numbers one
-- aggregate's events 1, 2, 3… so consumers can spot gaps and duplicates.
CREATE TABLE masterdeal_outbox (
    seq            BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    event_id       TEXT NOT NULL UNIQUE,
    aggregate_type TEXT NOT NULL,
    aggregate_id   TEXT NOT NULL,
    aggregate_seq  BIGINT NOT NULL,
    event_type     TEXT NOT NULL,
    payload        TEXT NOT NULL,
    created_at     BIGINT NOT NULL,
    published_at   BIGINT,
    UNIQUE (aggregate_type, aggregate_id, aggregate_seq)
);

CREATE INDEX masterdeal_outbox_unpublished ON masterdeal_outbox (seq) WHERE published_at IS NULL;
