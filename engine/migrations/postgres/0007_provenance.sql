-- Provenance: what each step of a recorded run did to a message (bodies redacted), kept for
-- following one message by its id, trace id or business key. Bounded: the runtime deletes
-- rows past a count and an age. Times are unix milliseconds.
CREATE TABLE provenance (
    id          BIGSERIAL PRIMARY KEY,
    run_id      TEXT NOT NULL,          -- one run of one message through one route
    route       TEXT NOT NULL,
    message_id  TEXT NOT NULL,
    trace_id    TEXT,                   -- shared by the runs a message caused over the bus
    business_key TEXT,                  -- the value of the key the route declares
    seq         BIGINT NOT NULL,        -- the step's place in the run
    step        TEXT NOT NULL,          -- 2:transform
    at          BIGINT NOT NULL,
    took_us     BIGINT NOT NULL,
    outcome     TEXT NOT NULL,          -- ok, dropped, failed
    error       TEXT,
    headers     TEXT NOT NULL,          -- JSON, as the step got them
    body_before TEXT NOT NULL,          -- JSON
    body_after  TEXT                    -- JSON; an array after a split; absent when dropped or failed
);
CREATE INDEX provenance_message ON provenance (message_id);
CREATE INDEX provenance_trace ON provenance (trace_id);
CREATE INDEX provenance_key ON provenance (business_key);
CREATE INDEX provenance_at ON provenance (at);
