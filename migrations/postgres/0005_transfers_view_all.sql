-- transfers.view_all: reading everyone's transfers and broadcasts in the portal (and the
-- transfer log export) used to need only portal.access. The built-in admin role gets it;
-- any other role that should keep those pages gets it in the portal's Roles page.
-- PostgreSQL version of migrations/sqlite/0005_transfers_view_all.sql.
INSERT INTO role_permissions (role_id, permission)
    SELECT id, 'transfers.view_all' FROM roles WHERE name = 'admin' AND builtin = 1
    ON CONFLICT DO NOTHING;
