-- Leases: work that must run in one instance at a time (an outbox relay, a poller, a
-- schedule's tick) is done by the instance holding its lease; when the holder dies the lease
-- expires and another instance takes it over.
CREATE TABLE leases (
    name       TEXT PRIMARY KEY,
    holder     TEXT NOT NULL,          -- the holding process's instance id
    expires_at BIGINT NOT NULL         -- unix milliseconds
);

-- Routes an admin paused: every instance holds them back, and they stay paused across restarts.
CREATE TABLE paused_routes (
    route      TEXT PRIMARY KEY,
    paused_at  BIGINT NOT NULL         -- unix milliseconds
);
