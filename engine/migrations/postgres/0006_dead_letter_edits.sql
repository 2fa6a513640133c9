-- A dead letter replayed after an admin edited it: what the replay sent (a message as JSON).
-- The message column keeps the original as it failed.
ALTER TABLE dead_letters ADD COLUMN replayed_with TEXT;
