-- A lab's exam mode (README "Exam mode"; `labbeam lab policy NAME --exam on|off`): 1 while
-- the lab runs an exam, 0 otherwise. While it is on, the students of the lab (devices whose
-- user has neither `broadcast.send` nor `users.manage`) can neither send nor receive
-- one-to-one transfers and see only the lab's instructors and admins in presence.
-- PostgreSQL version of migrations/sqlite/0012_lab_exam_mode.sql.
--
-- Switching it moves the access counter and notifies `labbeam_access` (migration 0004's
-- access_changed()), so live devices of the lab re-join under the policy within a second,
-- whichever process made the change.
ALTER TABLE labs ADD COLUMN exam BIGINT NOT NULL DEFAULT 0;

CREATE TRIGGER access_labs_exam_update AFTER UPDATE OF exam ON labs
    FOR EACH ROW EXECUTE FUNCTION access_changed();
