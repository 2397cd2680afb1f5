-- Hand-ins (docs/PROTOCOL.md, "Hand-ins"): an instructor collects files from every student
-- PC of a lab. The files go peer-to-peer to the instructor's browser like any transfer and
-- are never stored here; the store keeps the hand-in and, per student, the receipts the
-- instructor's browser gave once it verified their files (name, size, SHA-256).
--   handins.lab:                  the lab's name (its devices see the hand-in);
--   handins.collector_device_key: the browser that opened it, which receives the files;
--   handins.extensions:           allowed file name endings, lowercase, comma-separated, ''
--                                 for any; max_bytes: most bytes per student (NULL: none);
--   handins.allow_late:           1: accepted after the deadline, marked late.
--   handin_receipts.version:      1 for a student's first hand-in, 2 for the re-submission
--                                 that replaces it, …; files: JSON [{name, size, sha256}].
-- `transfers.handin_id`: the hand-in a transfer delivered to, NULL for other transfers.
-- The built-in admin and instructor roles get the new permission `collect`. This file is
-- the same in migrations/sqlite and migrations/postgres.
CREATE TABLE handins (
    id                   TEXT   PRIMARY KEY,
    lab                  TEXT   NOT NULL,
    owner_id             BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    owner_username       TEXT   NOT NULL,
    collector_device_key TEXT   NOT NULL,
    title                TEXT   NOT NULL,
    instructions         TEXT   NOT NULL,
    extensions           TEXT   NOT NULL,
    max_bytes            BIGINT,
    allow_late           BIGINT NOT NULL,
    deadline             BIGINT NOT NULL,
    created_at           BIGINT NOT NULL,
    closed_at            BIGINT
);
CREATE INDEX handins_lab ON handins (lab);
CREATE TABLE handin_receipts (
    handin_id   TEXT   NOT NULL REFERENCES handins(id) ON DELETE CASCADE,
    user_id     BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    version     BIGINT NOT NULL,
    username    TEXT   NOT NULL,
    transfer_id TEXT   NOT NULL,
    files       TEXT   NOT NULL,
    total_bytes BIGINT NOT NULL,
    received_at BIGINT NOT NULL,
    late        BIGINT NOT NULL,
    PRIMARY KEY (handin_id, user_id, version)
);
ALTER TABLE transfers ADD COLUMN handin_id TEXT;
INSERT INTO role_permissions (role_id, permission)
    SELECT id, 'collect' FROM roles WHERE name IN ('admin', 'instructor') AND builtin = 1
    ON CONFLICT DO NOTHING;
