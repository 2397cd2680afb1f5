-- A transfer may carry a text (a note, a link) instead of files (docs/PROTOCOL.md,
-- `transfer:request` with `text`): the text goes over the data channel as one file, like any
-- file's bytes, and is never stored here. The log keeps only its length in characters, so the
-- history and the portal can say "Text, 42 characters"; NULL for a transfer of files.
ALTER TABLE transfers ADD COLUMN text_chars BIGINT;
