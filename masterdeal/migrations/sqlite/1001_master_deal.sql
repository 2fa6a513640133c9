-- Master deals: one per CRM deal. Money is decimal TEXT, never REAL, so it round-trips
-- exactly; dates are ISO `YYYY-MM-DD` TEXT; times are unix milliseconds, as in the engine.
CREATE TABLE master_deal (
    id              TEXT PRIMARY KEY,
    crm_id          TEXT NOT NULL UNIQUE,
    external_ids    TEXT NOT NULL DEFAULT '{}',
    advertiser_name TEXT NOT NULL,
    advertiser_inn  TEXT NOT NULL,
    advertiser_kpp  TEXT,
    owner           TEXT NOT NULL,
    title           TEXT NOT NULL,
    budget          TEXT NOT NULL,
    currency        TEXT NOT NULL CHECK (length(currency) = 3),
    period_from     TEXT NOT NULL,
    period_to       TEXT NOT NULL,
    status          TEXT NOT NULL,
    version         BIGINT NOT NULL,
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL,
    CHECK (period_from <= period_to)
);

CREATE INDEX master_deal_status ON master_deal (status, id);
CREATE INDEX master_deal_owner ON master_deal (owner, id);
