-- A lab's exam mode (README "Exam mode"; `labbeam lab policy NAME --exam on|off`): 1 while
-- the lab runs an exam, 0 otherwise. While it is on, the students of the lab (devices whose
-- user has neither `broadcast.send` nor `users.manage`) can neither send nor receive
-- one-to-one transfers and see only the lab's instructors and admins in presence.
--
-- Switching it moves the access counter (migration 0004), so live devices of the lab re-join
-- under the policy within a second, whichever process made the change.
ALTER TABLE labs ADD COLUMN exam BIGINT NOT NULL DEFAULT 0;

CREATE TRIGGER access_labs_exam_update AFTER UPDATE OF exam ON labs
BEGIN UPDATE access_generation SET value = value + 1 WHERE id = 1; END;
