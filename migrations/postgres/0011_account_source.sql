-- Where an account comes from (README "Campus sign-in"): 'local' (a password kept here),
-- 'ldap' (the campus directory checks the password; made at first sign-in) or 'oidc' (an
-- identity provider). `external_id` is the directory DN or the provider's subject;
-- `groups_read_at` when the directory's groups were last read for it (at sign-in, and for
-- signed-in users every `[auth.ldap] refresh_minutes`). This file is the same in
-- migrations/sqlite and migrations/postgres.
ALTER TABLE users ADD COLUMN source TEXT NOT NULL DEFAULT 'local' CHECK (source IN ('local', 'ldap', 'oidc'));
ALTER TABLE users ADD COLUMN external_id TEXT;
ALTER TABLE users ADD COLUMN groups_read_at BIGINT;
