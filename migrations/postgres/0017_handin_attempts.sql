-- A student's first try to hand in on time (docs/PROTOCOL.md, "Hand-ins"): when the
-- collecting browser is away (`collector_offline`, or it left while the delivery waited in
-- its queue), the student's client sends again when it is back. A student who first tried
-- before the deadline is still on time if the delivery then starts within the grace period
-- after it (`signaling::handin::GRACE`), so an instructor's closed tab does not make the
-- class late. first_at: unix seconds, written once. This file is the same in
-- migrations/sqlite and migrations/postgres.
CREATE TABLE handin_attempts (
    handin_id TEXT   NOT NULL REFERENCES handins(id) ON DELETE CASCADE,
    user_id   BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    first_at  BIGINT NOT NULL,
    PRIMARY KEY (handin_id, user_id)
);
