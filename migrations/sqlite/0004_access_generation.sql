-- A counter bumped by every change that can alter what a signed-in user may do or see:
-- a user's role, display name or status (and a new user, whom the TURN relay must know),
-- a role's permissions, an instructor's labs, the labs and their ranges, the settings, and
-- the end of a session. The server watches it (several times a second)
-- and re-evaluates its live sockets and TURN users when it moves, so a change made by the
-- portal, the API or the command line (another process) reaches connected devices at once.
CREATE TABLE access_generation (
    id    INTEGER PRIMARY KEY CHECK (id = 1),
    value BIGINT  NOT NULL
);
INSERT INTO access_generation (id, value) VALUES (1, 0);

CREATE TRIGGER access_users_insert AFTER INSERT ON users
BEGIN UPDATE access_generation SET value = value + 1 WHERE id = 1; END;
CREATE TRIGGER access_users_update AFTER UPDATE OF role_id, disabled, display_name ON users
BEGIN UPDATE access_generation SET value = value + 1 WHERE id = 1; END;
CREATE TRIGGER access_users_delete AFTER DELETE ON users
BEGIN UPDATE access_generation SET value = value + 1 WHERE id = 1; END;
CREATE TRIGGER access_role_permissions_insert AFTER INSERT ON role_permissions
BEGIN UPDATE access_generation SET value = value + 1 WHERE id = 1; END;
CREATE TRIGGER access_role_permissions_delete AFTER DELETE ON role_permissions
BEGIN UPDATE access_generation SET value = value + 1 WHERE id = 1; END;
CREATE TRIGGER access_role_permissions_update AFTER UPDATE ON role_permissions
BEGIN UPDATE access_generation SET value = value + 1 WHERE id = 1; END;
CREATE TRIGGER access_user_labs_insert AFTER INSERT ON user_labs
BEGIN UPDATE access_generation SET value = value + 1 WHERE id = 1; END;
CREATE TRIGGER access_user_labs_delete AFTER DELETE ON user_labs
BEGIN UPDATE access_generation SET value = value + 1 WHERE id = 1; END;
CREATE TRIGGER access_labs_insert AFTER INSERT ON labs
BEGIN UPDATE access_generation SET value = value + 1 WHERE id = 1; END;
CREATE TRIGGER access_labs_update AFTER UPDATE OF name ON labs
BEGIN UPDATE access_generation SET value = value + 1 WHERE id = 1; END;
CREATE TRIGGER access_labs_delete AFTER DELETE ON labs
BEGIN UPDATE access_generation SET value = value + 1 WHERE id = 1; END;
CREATE TRIGGER access_lab_ranges_insert AFTER INSERT ON lab_ranges
BEGIN UPDATE access_generation SET value = value + 1 WHERE id = 1; END;
CREATE TRIGGER access_lab_ranges_delete AFTER DELETE ON lab_ranges
BEGIN UPDATE access_generation SET value = value + 1 WHERE id = 1; END;
-- A session that ends (logout, revocation; expiry is seen by time): its sockets and the
-- TURN allocations made with its credentials end at once.
CREATE TRIGGER access_sessions_revoke AFTER UPDATE OF revoked_at ON sessions
BEGIN UPDATE access_generation SET value = value + 1 WHERE id = 1; END;
CREATE TRIGGER access_sessions_delete AFTER DELETE ON sessions
BEGIN UPDATE access_generation SET value = value + 1 WHERE id = 1; END;
CREATE TRIGGER access_settings_insert AFTER INSERT ON settings
BEGIN UPDATE access_generation SET value = value + 1 WHERE id = 1; END;
CREATE TRIGGER access_settings_update AFTER UPDATE ON settings
BEGIN UPDATE access_generation SET value = value + 1 WHERE id = 1; END;
CREATE TRIGGER access_settings_delete AFTER DELETE ON settings
BEGIN UPDATE access_generation SET value = value + 1 WHERE id = 1; END;
