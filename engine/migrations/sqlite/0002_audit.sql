-- The audit log: who did what through the gateway and the admin API, and how it ended.
-- Append-only; retention deletes the oldest rows. Times are unix milliseconds, as elsewhere.

-- AUTOINCREMENT, not a plain rowid: an id quoted in a report or used as a page cursor must
-- never come back as another entry once rows are deleted.
CREATE TABLE audit (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    at         BIGINT NOT NULL,
    actor      TEXT NOT NULL,          -- api key id, JWT subject, basic-auth user, `admin`, `anonymous`
    actor_kind TEXT NOT NULL,          -- api_key, jwt, hmac, basic, admin_token, none
    action     TEXT NOT NULL,          -- `POST /webhooks/crm/deals`, `admin.reload`
    target     TEXT,                   -- route id, dead-letter id…
    outcome    TEXT NOT NULL,          -- ok, denied, failed, limited…
    status     BIGINT,                 -- the HTTP status
    request_id TEXT,
    detail     TEXT                    -- a short reason; never a secret or a body
);
CREATE INDEX audit_at ON audit (at);
CREATE INDEX audit_actor_id ON audit (actor, id);
