-- The keys an `idempotent` step has let through, until they expire: a duplicate is still
-- recognised after a restart. A key is written once its message was delivered.

CREATE TABLE idempotency_keys (
    route      TEXT NOT NULL,
    step       TEXT NOT NULL,          -- the step's label in its route: `2:idempotent`
    idem_key   TEXT NOT NULL,
    expires_at BIGINT NOT NULL,        -- unix milliseconds
    PRIMARY KEY (route, step, idem_key)
);
CREATE INDEX idempotency_keys_expiry ON idempotency_keys (expires_at);
