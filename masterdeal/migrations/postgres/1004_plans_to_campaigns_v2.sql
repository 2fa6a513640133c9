-- The model of plans to campaigns as the MasterDeal issue specifies it. 1002's tables were
-- never written by a release, so they are dropped empty and made again, children first.
-- Money is NUMERIC, never float. Dates are ISO TEXT; times are unix milliseconds.
DROP TABLE campaign_stats;
DROP TABLE campaign;
DROP TABLE contract;
DROP TABLE proposal;
DROP TABLE media_plan_line;
DROP TABLE media_plan;

-- `number` counts a deal's plans 1, 2, 3…; `version` is the optimistic concurrency token.
CREATE TABLE media_plan (
    id                      TEXT PRIMARY KEY,
    deal_id                 TEXT NOT NULL REFERENCES master_deal (id),
    number                  BIGINT NOT NULL,
    status                  TEXT NOT NULL,
    source                  TEXT NOT NULL CHECK (source IN ('manual', 'llm')),
    prompt_template_version TEXT,
    model                   TEXT,
    total                   NUMERIC NOT NULL,
    currency                TEXT NOT NULL CHECK (length(currency) = 3),
    version                 BIGINT NOT NULL,
    created_at              BIGINT NOT NULL,
    updated_at              BIGINT NOT NULL,
    UNIQUE (deal_id, number)
);
-- A deal has at most one approved plan, even when two approvals race.
CREATE UNIQUE INDEX media_plan_one_approved ON media_plan (deal_id) WHERE status = 'approved';

CREATE TABLE media_plan_line (
    id            TEXT PRIMARY KEY,
    media_plan_id TEXT NOT NULL REFERENCES media_plan (id) ON DELETE CASCADE,
    position      BIGINT NOT NULL,
    channel       TEXT NOT NULL,
    platform      TEXT NOT NULL,
    format        TEXT NOT NULL,
    flight_from   TEXT NOT NULL,
    flight_to     TEXT NOT NULL,
    budget        NUMERIC NOT NULL,
    impressions   BIGINT,
    clicks        BIGINT,
    reach         BIGINT,
    cpm           NUMERIC,
    ctr           NUMERIC,
    UNIQUE (media_plan_id, position),
    CHECK (flight_from <= flight_to)
);

CREATE TABLE proposal (
    id                      TEXT PRIMARY KEY,
    deal_id                 TEXT NOT NULL REFERENCES master_deal (id),
    media_plan_id           TEXT NOT NULL REFERENCES media_plan (id),
    body_markdown           TEXT NOT NULL,
    body_html               TEXT NOT NULL,
    status                  TEXT NOT NULL,
    generated_by            TEXT NOT NULL,
    prompt_template_version TEXT,
    version                 BIGINT NOT NULL,
    created_at              BIGINT NOT NULL,
    updated_at              BIGINT NOT NULL
);
CREATE INDEX proposal_deal ON proposal (deal_id);

CREATE TABLE contract (
    id                     TEXT PRIMARY KEY,
    deal_id                TEXT NOT NULL REFERENCES master_deal (id),
    number                 TEXT NOT NULL UNIQUE,
    contract_date          TEXT NOT NULL,
    amount                 NUMERIC NOT NULL,
    currency               TEXT NOT NULL CHECK (length(currency) = 3),
    amount_override_reason TEXT,
    status                 TEXT NOT NULL,
    billing_ids            TEXT NOT NULL DEFAULT '{}',
    payment_status         TEXT NOT NULL,
    version                BIGINT NOT NULL,
    created_at             BIGINT NOT NULL,
    updated_at             BIGINT NOT NULL
);
CREATE INDEX contract_deal ON contract (deal_id);

-- `spend` is the roll-up of campaign_stats, rewritten with every stats batch.
CREATE TABLE campaign (
    id                   TEXT PRIMARY KEY,
    deal_id              TEXT NOT NULL REFERENCES master_deal (id),
    media_plan_line_id   TEXT NOT NULL REFERENCES media_plan_line (id),
    platform             TEXT NOT NULL,
    platform_campaign_id TEXT,
    name                 TEXT NOT NULL,
    status               TEXT NOT NULL,
    flight_from          TEXT NOT NULL,
    flight_to            TEXT NOT NULL,
    budget               NUMERIC NOT NULL,
    spend                NUMERIC NOT NULL,
    currency             TEXT NOT NULL CHECK (length(currency) = 3),
    version              BIGINT NOT NULL,
    created_at           BIGINT NOT NULL,
    updated_at           BIGINT NOT NULL,
    UNIQUE (platform, platform_campaign_id),
    CHECK (flight_from <= flight_to)
);
CREATE INDEX campaign_deal ON campaign (deal_id);

CREATE TABLE campaign_stats (
    campaign_id TEXT NOT NULL REFERENCES campaign (id) ON DELETE CASCADE,
    day         TEXT NOT NULL,
    impressions BIGINT NOT NULL,
    clicks      BIGINT NOT NULL,
    spend       NUMERIC NOT NULL,
    conversions BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL,
    PRIMARY KEY (campaign_id, day)
);
