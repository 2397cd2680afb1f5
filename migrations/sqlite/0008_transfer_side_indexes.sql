-- The transfer log's filters on either side of a transfer: a username (the portal's and the
-- API's user filter) and a lab, each with the time. db::transfers::list reads a filtered
-- page as the newest rows of the value in the sending side's index and in the receiving
-- side's, and stops after a page, where it walked the whole log newest-first until a page
-- matched: all of it for a user or a lab with no rows (bench/store). A user by id already
-- has transfers_sender and transfers_receiver. This file is the same in migrations/sqlite
-- and migrations/postgres.
CREATE INDEX transfers_sender_username ON transfers (sender_username, requested_at);
CREATE INDEX transfers_receiver_username ON transfers (receiver_username, requested_at);
CREATE INDEX transfers_sender_lab ON transfers (sender_lab, requested_at);
CREATE INDEX transfers_receiver_lab ON transfers (receiver_lab, requested_at);
