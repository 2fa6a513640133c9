-- A generation: a media plan or a commercial proposal a route drafts with a model, asked
-- for through the API (202 Accepted) and followed there until it is `done` (with the id of
-- what was stored) or `failed` (with the problem). Times are unix milliseconds.
CREATE TABLE masterdeal_generation (
    id          TEXT PRIMARY KEY,
    kind        TEXT NOT NULL CHECK (kind IN ('media_plan', 'proposal')),
    -- The deal a media plan is drafted for; the media plan a proposal is drafted for.
    subject_id  TEXT NOT NULL,
    status      TEXT NOT NULL CHECK (status IN ('pending', 'done', 'failed')),
    result_id   TEXT,
    problem     TEXT,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL
);
