-- Resumable transfers: each side's device id (client-generated, kept by the browser), so
-- that after a reconnection or a server restart only the same device of the same user can
-- re-claim its side of an accepted, unfinished transfer. PostgreSQL version of
-- migrations/sqlite/0003_resume.sql.
ALTER TABLE transfers ADD COLUMN sender_device_key TEXT NOT NULL DEFAULT '';
ALTER TABLE transfers ADD COLUMN receiver_device_key TEXT NOT NULL DEFAULT '';
