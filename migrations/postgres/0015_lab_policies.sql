-- A lab's own presence visibility (README "Lab policies"; `labbeam lab policy NAME
-- --visibility own|all|default`): 'own' keeps the lab's students to their own lab (they see
-- only its devices, and students of other labs do not see them), 'all' lets them see every
-- lab whose students are not kept to their own, NULL follows the setting `presence.scope`.
-- Only those two words are ever written (`labs::Visibility`, the one writer).
-- PostgreSQL version of migrations/sqlite/0015_lab_policies.sql.
--
-- Changing it moves the access counter and notifies `labbeam_access` (migration 0004's
-- access_changed()), so the lab's live devices re-join under it within a second, whichever
-- process made the change.
ALTER TABLE labs ADD COLUMN visibility TEXT;

CREATE TRIGGER access_labs_visibility_update AFTER UPDATE OF visibility ON labs
    FOR EACH ROW EXECUTE FUNCTION access_changed();
