-- A key's revision, bumped whenever what the key may do changes (permission set, path,
-- expiry), so that sessions signed in with it before the change can tell and end
-- (`Authenticator::still_valid`). Users already have one (`users.revision`).
ALTER TABLE api_keys ADD COLUMN revision BIGINT NOT NULL DEFAULT 1;
