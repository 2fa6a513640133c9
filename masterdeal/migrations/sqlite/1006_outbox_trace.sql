-- The trace an event was written in (W3C Trace Context: the trace id and the span it was
-- written under), so that the relay publishes it in that trace and whatever reacts to the
-- event continues it. NULL for an event written outside any trace.
ALTER TABLE masterdeal_outbox ADD COLUMN trace_id TEXT;
ALTER TABLE masterdeal_outbox ADD COLUMN parent_span_id TEXT;
