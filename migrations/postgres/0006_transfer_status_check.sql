-- transfers.status holds only the words LabBeam writes (db::transfers::TransferStatus):
-- requested, accepted (live), completed, failed, cancelled, declined, expired (final).
-- PostgreSQL version of migrations/sqlite/0006_transfer_status_check.sql. PostgreSQL can
-- add a CHECK constraint to an existing table, so this is one; SQLite cannot, and has two
-- triggers (transfers_status_insert, transfers_status_update) that refuse the same words.
ALTER TABLE transfers ADD CONSTRAINT transfers_status_check
    CHECK (status IN ('requested', 'accepted', 'completed', 'failed', 'cancelled', 'declined', 'expired'));
