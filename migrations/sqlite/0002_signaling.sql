-- Signaling: announcements shown to late joiners, and broadcasts (one row per broadcast;
-- each recipient has its own row in transfers with broadcast_id set).

CREATE TABLE announcements (
    id           INTEGER PRIMARY KEY,
    from_user_id INTEGER REFERENCES users(id) ON DELETE SET NULL,
    from_name    TEXT    NOT NULL,
    lab          TEXT,            -- NULL: everyone
    text         TEXT    NOT NULL,
    created_at   BIGINT  NOT NULL,
    expires_at   BIGINT  NOT NULL
);
CREATE INDEX announcements_expires ON announcements(expires_at);

CREATE TABLE broadcasts (
    id              TEXT    PRIMARY KEY,
    sender_id       INTEGER REFERENCES users(id) ON DELETE SET NULL,
    sender_username TEXT    NOT NULL,
    target          TEXT    NOT NULL,   -- JSON: {"lab":..} | {"all":true} | {"peers":[..]}
    files           TEXT    NOT NULL,   -- JSON list of {name,size,mime}
    total_bytes     BIGINT  NOT NULL,
    recipients      BIGINT  NOT NULL,
    created_at      BIGINT  NOT NULL
);
CREATE INDEX broadcasts_created ON broadcasts(created_at);
CREATE INDEX transfers_requested_id ON transfers(requested_at, id);
