-- Each audit event carries a key made when it happened, so that a batch written again after
-- a lost acknowledgement (the connection dropped after COMMIT) is not stored twice.
ALTER TABLE audit_events ADD COLUMN event_key TEXT;
CREATE UNIQUE INDEX audit_events_event_key ON audit_events (event_key);
