-- "Test my connection" results sent by the web client (POST /api/connection-tests): what a
-- lab PC's browser reached on the appliance's STUN/TURN, listed per lab on the portal's
-- Health page. Each path is 'ok', 'failed' or 'not_offered'; the lab is the one the PC's
-- address was in when it tested ('' outside every lab). Rows older than 30 days are
-- deleted as new ones arrive (db::connection_tests).
CREATE TABLE connection_tests (
    id           INTEGER PRIMARY KEY,
    tested_at    BIGINT NOT NULL,
    user_id      INTEGER REFERENCES users(id) ON DELETE SET NULL,
    username     TEXT   NOT NULL,
    device       TEXT   NOT NULL,
    client_addr  TEXT   NOT NULL,
    lab          TEXT   NOT NULL,
    direct       TEXT   NOT NULL,
    stun         TEXT   NOT NULL,
    relay_udp    TEXT   NOT NULL,
    relay_tcp    TEXT   NOT NULL,
    relay_tls    TEXT   NOT NULL
);
CREATE INDEX connection_tests_tested ON connection_tests(tested_at);
CREATE INDEX connection_tests_address ON connection_tests(client_addr, id);
CREATE INDEX connection_tests_user ON connection_tests(user_id, tested_at);
