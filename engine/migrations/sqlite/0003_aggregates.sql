-- The aggregation repository: every message an aggregate step holds, until the group it
-- belongs to has been released and delivered. Open groups outlive a crash or a restart.

CREATE TABLE aggregate_messages (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,  -- arrival order
    route      TEXT NOT NULL,
    step       TEXT NOT NULL,          -- the aggregate's label in its route: `1:aggregate`
    group_key  TEXT NOT NULL,
    message    TEXT NOT NULL,          -- the Message as JSON
    created_at BIGINT NOT NULL,
    completion TEXT,                   -- NULL while the group is open; then the release's id
    claimed_by TEXT                    -- the process that released the group
);
CREATE INDEX aggregate_messages_group ON aggregate_messages (route, step, group_key, completion);
CREATE INDEX aggregate_messages_completion ON aggregate_messages (route, step, completion);
