-- Hold expiry and review overrides on authorizations.

ALTER TABLE authorizations
    ADD COLUMN hold_expires_at timestamptz,  -- approvals only: when the sweeper releases what is left
    ADD COLUMN expired_minor bigint NOT NULL DEFAULT 0 CHECK (expired_minor >= 0),
    ADD COLUMN override_review_id text;  -- approved past the review threshold by this resolved review

CREATE INDEX authorizations_live_holds ON authorizations (hold_expires_at) WHERE remaining_hold_minor > 0;
