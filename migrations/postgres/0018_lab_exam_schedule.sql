-- A lab's exam window (README "Exam mode"; `labbeam lab policy NAME --exam-from TIME
-- --exam-until TIME`, or the portal's Labs page): exam_from and exam_until in unix seconds,
-- both NULL when the lab has none. At most one window per lab, at most 24 hours long. The
-- server (`exam_schedule`) switches the lab's exam mode on once the clock reaches exam_from
-- and off once it reaches exam_until, and then clears both; switching exam mode off by hand
-- while the window runs clears them too. Only `lab_admin` writes them, checked.
-- PostgreSQL version of migrations/sqlite/0018_lab_exam_schedule.sql.
--
-- Changing them moves the access counter and notifies `labbeam_access` (migration 0004's
-- access_changed()), so that every server on the store reads the new window within a
-- second, whichever process made the change.
ALTER TABLE labs ADD COLUMN exam_from BIGINT;
ALTER TABLE labs ADD COLUMN exam_until BIGINT;

CREATE TRIGGER access_labs_exam_window_update AFTER UPDATE OF exam_from, exam_until ON labs
    FOR EACH ROW EXECUTE FUNCTION access_changed();
