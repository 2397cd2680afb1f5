-- A lab's seat map: the name of the lab PC at one address ("PC-14" at 10.0.2.14), shown as
-- that device's name (presence, transfer requests, the transfer log, the portal) instead of
-- what its browser calls itself. `address` is the canonical text of one IP address (an
-- IPv4-mapped IPv6 address as IPv4); it lay in one of the lab's ranges when it was set
-- (lab_admin checks that, and that a lab's seat names differ), and a seat names a device
-- only while the lab's ranges still place that address in the lab. Deleting a lab deletes
-- its seats. PostgreSQL version of migrations/sqlite/0010_lab_seats.sql.
--
-- Every change moves the access counter and notifies `labbeam_access` (migration 0004's
-- access_changed()), so live devices at a renamed seat re-join under the new name within a
-- second, whichever process made the change.
CREATE TABLE lab_seats (
    lab_id  BIGINT NOT NULL REFERENCES labs(id) ON DELETE CASCADE,
    address TEXT   NOT NULL,
    name    TEXT   NOT NULL,
    PRIMARY KEY (lab_id, address)
);

CREATE TRIGGER access_lab_seats_insert AFTER INSERT ON lab_seats
    FOR EACH ROW EXECUTE FUNCTION access_changed();
CREATE TRIGGER access_lab_seats_update AFTER UPDATE ON lab_seats
    FOR EACH ROW EXECUTE FUNCTION access_changed();
CREATE TRIGGER access_lab_seats_delete AFTER DELETE ON lab_seats
    FOR EACH ROW EXECUTE FUNCTION access_changed();
