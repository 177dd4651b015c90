-- Incremental authorizations: an approval whose hold joins an earlier one's.

ALTER TABLE authorizations
    ADD COLUMN incremental_of text,  -- on the increment: the original authorization
    ADD COLUMN incremented_minor bigint NOT NULL DEFAULT 0 CHECK (incremented_minor >= 0);  -- on the original
