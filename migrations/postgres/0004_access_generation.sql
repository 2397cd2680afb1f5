-- A counter bumped by every change that can alter what a signed-in user may do or see:
-- a user's role, display name or status (and a new user, whom the TURN relay must know),
-- a role's permissions, an instructor's labs, the labs and their ranges, the settings, and
-- the end of a session. PostgreSQL version of migrations/sqlite/0004_access_generation.sql:
-- the same table, and the same triggers (names, tables and events), all calling one
-- function.
--
-- Besides bumping the counter, the function sends a notification on the channel
-- `labbeam_access`. The server LISTENs on that channel, so a change made by another
-- process (the command line, another server on the same database) reaches its live
-- sockets and TURN users at once, without polling. A notification is delivered when the
-- transaction commits, and once per transaction however many rows changed.
CREATE TABLE access_generation (
    id    BIGINT PRIMARY KEY CHECK (id = 1),
    value BIGINT NOT NULL
);
INSERT INTO access_generation (id, value) VALUES (1, 0);

CREATE FUNCTION access_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE access_generation SET value = value + 1 WHERE id = 1;
    PERFORM pg_notify('labbeam_access', '');
    RETURN NULL;
END;
$$;

CREATE TRIGGER access_users_insert AFTER INSERT ON users
    FOR EACH ROW EXECUTE FUNCTION access_changed();
CREATE TRIGGER access_users_update AFTER UPDATE OF role_id, disabled, display_name ON users
    FOR EACH ROW EXECUTE FUNCTION access_changed();
CREATE TRIGGER access_users_delete AFTER DELETE ON users
    FOR EACH ROW EXECUTE FUNCTION access_changed();
CREATE TRIGGER access_role_permissions_insert AFTER INSERT ON role_permissions
    FOR EACH ROW EXECUTE FUNCTION access_changed();
CREATE TRIGGER access_role_permissions_delete AFTER DELETE ON role_permissions
    FOR EACH ROW EXECUTE FUNCTION access_changed();
CREATE TRIGGER access_role_permissions_update AFTER UPDATE ON role_permissions
    FOR EACH ROW EXECUTE FUNCTION access_changed();
CREATE TRIGGER access_user_labs_insert AFTER INSERT ON user_labs
    FOR EACH ROW EXECUTE FUNCTION access_changed();
CREATE TRIGGER access_user_labs_delete AFTER DELETE ON user_labs
    FOR EACH ROW EXECUTE FUNCTION access_changed();
CREATE TRIGGER access_labs_insert AFTER INSERT ON labs
    FOR EACH ROW EXECUTE FUNCTION access_changed();
CREATE TRIGGER access_labs_update AFTER UPDATE OF name ON labs
    FOR EACH ROW EXECUTE FUNCTION access_changed();
CREATE TRIGGER access_labs_delete AFTER DELETE ON labs
    FOR EACH ROW EXECUTE FUNCTION access_changed();
CREATE TRIGGER access_lab_ranges_insert AFTER INSERT ON lab_ranges
    FOR EACH ROW EXECUTE FUNCTION access_changed();
CREATE TRIGGER access_lab_ranges_delete AFTER DELETE ON lab_ranges
    FOR EACH ROW EXECUTE FUNCTION access_changed();
-- A session that ends (logout, revocation; expiry is seen by time): its sockets and the
-- TURN allocations made with its credentials end at once.
CREATE TRIGGER access_sessions_revoke AFTER UPDATE OF revoked_at ON sessions
    FOR EACH ROW EXECUTE FUNCTION access_changed();
CREATE TRIGGER access_sessions_delete AFTER DELETE ON sessions
    FOR EACH ROW EXECUTE FUNCTION access_changed();
CREATE TRIGGER access_settings_insert AFTER INSERT ON settings
    FOR EACH ROW EXECUTE FUNCTION access_changed();
CREATE TRIGGER access_settings_update AFTER UPDATE ON settings
    FOR EACH ROW EXECUTE FUNCTION access_changed();
CREATE TRIGGER access_settings_delete AFTER DELETE ON settings
    FOR EACH ROW EXECUTE FUNCTION access_changed();
