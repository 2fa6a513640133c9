-- Each running instance's route counters, written every few seconds, so that every
-- instance's console can show them per instance and summed. Times are unix milliseconds.
CREATE TABLE instance_counters (
    instance      TEXT NOT NULL,
    route         TEXT NOT NULL,
    received      BIGINT NOT NULL,
    completed     BIGINT NOT NULL,
    dead_lettered BIGINT NOT NULL,
    in_flight     BIGINT NOT NULL,
    updated_at    BIGINT NOT NULL,
    PRIMARY KEY (instance, route)
);
CREATE INDEX instance_counters_updated ON instance_counters (updated_at);
