-- transfers.status holds only the words LabBeam writes (db::transfers::TransferStatus):
-- requested, accepted (live), completed, failed, cancelled, declined, expired (final).
-- SQLite cannot add a CHECK constraint to an existing table, so these triggers refuse any
-- other word on insert and on update, whoever writes it.
CREATE TRIGGER transfers_status_insert BEFORE INSERT ON transfers
WHEN NEW.status NOT IN ('requested', 'accepted', 'completed', 'failed', 'cancelled', 'declined', 'expired')
BEGIN
    SELECT RAISE(ABORT, 'transfers.status must be requested, accepted, completed, failed, cancelled, declined or expired');
END;
CREATE TRIGGER transfers_status_update BEFORE UPDATE OF status ON transfers
WHEN NEW.status NOT IN ('requested', 'accepted', 'completed', 'failed', 'cancelled', 'declined', 'expired')
BEGIN
    SELECT RAISE(ABORT, 'transfers.status must be requested, accepted, completed, failed, cancelled, declined or expired');
END;
