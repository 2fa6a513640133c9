-- What a master deal grows into: media plans and their lines, proposals, contracts,
-- campaigns and their daily statistics. Money is NUMERIC, never float.
CREATE TABLE media_plan (
    id          TEXT PRIMARY KEY,
    deal_id     TEXT NOT NULL REFERENCES master_deal (id),
    name        TEXT NOT NULL,
    status      TEXT NOT NULL,
    total       NUMERIC NOT NULL,
    currency    TEXT NOT NULL CHECK (length(currency) = 3),
    version     BIGINT NOT NULL,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL
);
CREATE INDEX media_plan_deal ON media_plan (deal_id);

CREATE TABLE media_plan_line (
    id            TEXT PRIMARY KEY,
    media_plan_id TEXT NOT NULL REFERENCES media_plan (id) ON DELETE CASCADE,
    position      BIGINT NOT NULL,
    channel       TEXT NOT NULL,
    placement     TEXT NOT NULL,
    period_from   TEXT NOT NULL,
    period_to     TEXT NOT NULL,
    quantity      NUMERIC NOT NULL,
    unit_price    NUMERIC NOT NULL,
    amount        NUMERIC NOT NULL,
    UNIQUE (media_plan_id, position)
);

CREATE TABLE proposal (
    id            TEXT PRIMARY KEY,
    deal_id       TEXT NOT NULL REFERENCES master_deal (id),
    media_plan_id TEXT REFERENCES media_plan (id),
    status        TEXT NOT NULL,
    amount        NUMERIC NOT NULL,
    currency      TEXT NOT NULL CHECK (length(currency) = 3),
    sent_at       BIGINT,
    version       BIGINT NOT NULL,
    created_at    BIGINT NOT NULL,
    updated_at    BIGINT NOT NULL
);
CREATE INDEX proposal_deal ON proposal (deal_id);

CREATE TABLE contract (
    id           TEXT PRIMARY KEY,
    deal_id      TEXT NOT NULL REFERENCES master_deal (id),
    proposal_id  TEXT REFERENCES proposal (id),
    number       TEXT NOT NULL UNIQUE,
    status       TEXT NOT NULL,
    amount       NUMERIC NOT NULL,
    currency     TEXT NOT NULL CHECK (length(currency) = 3),
    signed_on    TEXT,
    version      BIGINT NOT NULL,
    created_at   BIGINT NOT NULL,
    updated_at   BIGINT NOT NULL
);
CREATE INDEX contract_deal ON contract (deal_id);

CREATE TABLE campaign (
    id           TEXT PRIMARY KEY,
    deal_id      TEXT NOT NULL REFERENCES master_deal (id),
    contract_id  TEXT REFERENCES contract (id),
    external_ids TEXT NOT NULL DEFAULT '{}',
    name         TEXT NOT NULL,
    status       TEXT NOT NULL,
    budget       NUMERIC NOT NULL,
    currency     TEXT NOT NULL CHECK (length(currency) = 3),
    period_from  TEXT NOT NULL,
    period_to    TEXT NOT NULL,
    version      BIGINT NOT NULL,
    created_at   BIGINT NOT NULL,
    updated_at   BIGINT NOT NULL
);
CREATE INDEX campaign_deal ON campaign (deal_id);

CREATE TABLE campaign_stats (
    campaign_id TEXT NOT NULL REFERENCES campaign (id) ON DELETE CASCADE,
    day         TEXT NOT NULL,
    impressions BIGINT NOT NULL DEFAULT 0,
    clicks      BIGINT NOT NULL DEFAULT 0,
    spend       NUMERIC NOT NULL,
    updated_at  BIGINT NOT NULL,
    PRIMARY KEY (campaign_id, day)
);
