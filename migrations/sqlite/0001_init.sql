-- LabBeam schema, version 1.
-- Portable types only (INTEGER/BIGINT for flags and unix seconds, TEXT, BLOB) so the same
-- repository code runs on PostgreSQL with its own migration folder.

CREATE TABLE roles (
    id          INTEGER PRIMARY KEY,
    name        TEXT    NOT NULL UNIQUE,
    description TEXT    NOT NULL DEFAULT '',
    builtin     BIGINT  NOT NULL DEFAULT 0,
    created_at  BIGINT  NOT NULL
);

CREATE TABLE role_permissions (
    role_id    INTEGER NOT NULL REFERENCES roles(id) ON DELETE CASCADE,
    permission TEXT    NOT NULL,
    PRIMARY KEY (role_id, permission)
);

CREATE TABLE users (
    id                   INTEGER PRIMARY KEY,
    username             TEXT    NOT NULL UNIQUE COLLATE NOCASE,
    display_name         TEXT    NOT NULL,
    password_hash        TEXT    NOT NULL,
    role_id              INTEGER NOT NULL REFERENCES roles(id),
    disabled             BIGINT  NOT NULL DEFAULT 0,
    must_change_password BIGINT  NOT NULL DEFAULT 0,
    created_at           BIGINT  NOT NULL,
    updated_at           BIGINT  NOT NULL,
    last_login_at        BIGINT
);
CREATE INDEX users_role ON users(role_id);

CREATE TABLE labs (
    id          INTEGER PRIMARY KEY,
    name        TEXT   NOT NULL UNIQUE COLLATE NOCASE,
    description TEXT   NOT NULL DEFAULT '',
    created_at  BIGINT NOT NULL
);

-- A lab's address ranges; a device's lab is the lab whose range holds its address.
CREATE TABLE lab_ranges (
    lab_id INTEGER NOT NULL REFERENCES labs(id) ON DELETE CASCADE,
    cidr   TEXT    NOT NULL,
    PRIMARY KEY (lab_id, cidr)
);

-- Labs an instructor is responsible for (broadcast and audit scope).
CREATE TABLE user_labs (
    user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    lab_id  INTEGER NOT NULL REFERENCES labs(id) ON DELETE CASCADE,
    PRIMARY KEY (user_id, lab_id)
);

-- One row per login; the JWT's jti is the id. Revocation is immediate because every
-- request and socket checks this table.
CREATE TABLE sessions (
    id           TEXT    PRIMARY KEY,
    user_id      INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    created_at   BIGINT  NOT NULL,
    expires_at   BIGINT  NOT NULL,
    last_seen_at BIGINT  NOT NULL,
    revoked_at   BIGINT,
    client_addr  TEXT    NOT NULL DEFAULT '',
    user_agent   TEXT    NOT NULL DEFAULT ''
);
CREATE INDEX sessions_user ON sessions(user_id);
CREATE INDEX sessions_expires ON sessions(expires_at);

-- Append-only: the trigger refuses updates. Retention may delete old rows.
CREATE TABLE audit_log (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    at             BIGINT  NOT NULL,
    actor_user_id  INTEGER,
    actor_username TEXT    NOT NULL DEFAULT '',
    action         TEXT    NOT NULL,
    target         TEXT    NOT NULL DEFAULT '',
    details        TEXT    NOT NULL DEFAULT '{}',
    client_addr    TEXT    NOT NULL DEFAULT ''
);
CREATE INDEX audit_at ON audit_log(at);
CREATE INDEX audit_action ON audit_log(action, at);
CREATE INDEX audit_actor ON audit_log(actor_user_id, at);
CREATE TRIGGER audit_log_append_only BEFORE UPDATE ON audit_log
BEGIN
    SELECT RAISE(ABORT, 'audit_log is append-only');
END;

-- One row per transfer (one per recipient for broadcasts).
CREATE TABLE transfers (
    id               TEXT    PRIMARY KEY,
    sender_id        INTEGER REFERENCES users(id) ON DELETE SET NULL,
    receiver_id      INTEGER REFERENCES users(id) ON DELETE SET NULL,
    sender_username  TEXT    NOT NULL,
    receiver_username TEXT   NOT NULL,
    sender_device    TEXT    NOT NULL DEFAULT '',
    receiver_device  TEXT    NOT NULL DEFAULT '',
    sender_lab       TEXT    NOT NULL DEFAULT '',
    receiver_lab     TEXT    NOT NULL DEFAULT '',
    files            TEXT    NOT NULL DEFAULT '[]',
    file_count       BIGINT  NOT NULL DEFAULT 0,
    total_bytes      BIGINT  NOT NULL DEFAULT 0,
    bytes            BIGINT  NOT NULL DEFAULT 0,
    sha256           TEXT    NOT NULL DEFAULT '',
    status           TEXT    NOT NULL,
    path             TEXT    NOT NULL DEFAULT '',
    requested_at     BIGINT  NOT NULL,
    accepted_at      BIGINT,
    finished_at      BIGINT,
    duration_ms      BIGINT,
    failure_reason   TEXT    NOT NULL DEFAULT '',
    broadcast_id     TEXT
);
CREATE INDEX transfers_requested ON transfers(requested_at);
CREATE INDEX transfers_sender ON transfers(sender_id, requested_at);
CREATE INDEX transfers_receiver ON transfers(receiver_id, requested_at);
CREATE INDEX transfers_status ON transfers(status, requested_at);
CREATE INDEX transfers_broadcast ON transfers(broadcast_id);

-- Settings changed in the portal; values are JSON. Absent keys take their defaults.
CREATE TABLE settings (
    key        TEXT   PRIMARY KEY,
    value      TEXT   NOT NULL,
    updated_at BIGINT NOT NULL,
    updated_by INTEGER
);

INSERT INTO roles (id, name, description, builtin, created_at) VALUES
    (1, 'admin', 'Full control of the appliance', 1, 0),
    (2, 'instructor', 'Broadcasts to own labs, announces, sends and receives files', 1, 0),
    (3, 'student', 'Sends and receives files', 1, 0);

INSERT INTO role_permissions (role_id, permission) VALUES
    (1, 'portal.access'), (1, 'users.manage'), (1, 'audit.view'), (1, 'broadcast.send'),
    (1, 'announce'), (1, 'transfer.send'), (1, 'transfer.receive'),
    (2, 'broadcast.send'), (2, 'announce'), (2, 'transfer.send'), (2, 'transfer.receive'),
    (2, 'audit.view'),
    (3, 'transfer.send'), (3, 'transfer.receive');
