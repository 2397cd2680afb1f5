-- User names and lab names are case-insensitive: 'Ann' and 'ann' are one account, 'Lab 1'
-- and 'LAB 1' one lab. Queries look a name up with `lower(col) = lower($1)`, which works
-- the same on SQLite and PostgreSQL and uses these indexes; the unique indexes refuse a
-- second name that differs only in case on both databases (PostgreSQL's UNIQUE on the
-- columns is case-sensitive). This file is the same in migrations/sqlite and
-- migrations/postgres.
--
-- On SQLite it cannot fail on existing data: the columns are already UNIQUE COLLATE NOCASE,
-- and NOCASE and lower() fold the same letters (ASCII A-Z only), so no two existing names
-- have the same lower(). Letters outside ASCII: SQLite's lower() keeps them as they are,
-- PostgreSQL's folds them as the database's locale says, so 'Émile' and 'émile' are two
-- names on SQLite and, unless the database's locale is C, one name on PostgreSQL.
CREATE UNIQUE INDEX users_username_lower ON users (lower(username));
CREATE UNIQUE INDEX labs_name_lower ON labs (lower(name));
