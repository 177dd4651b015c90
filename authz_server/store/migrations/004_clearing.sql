-- Clearing records matched to authorizations, and the review queue.

ALTER TABLE authorizations
    ADD COLUMN cleared_minor bigint NOT NULL DEFAULT 0 CHECK (cleared_minor >= 0);

CREATE TABLE clearings (
    tenant_id           text NOT NULL,
    clearing_id         text NOT NULL,
    authorization_id    text,  -- NULL for force posts without an authorization id
    card_id             text NOT NULL,
    account_ref         text NOT NULL,
    kind                smallint NOT NULL CHECK (kind IN (1, 2)),  -- CAPTURE, REFUND
    is_final            boolean NOT NULL,
    amount_minor        bigint NOT NULL CHECK (amount_minor > 0),
    currency            char(3) NOT NULL,
    merchant            jsonb NOT NULL,
    outcome             smallint NOT NULL CHECK (outcome BETWEEN 1 AND 5),  -- ClearingOutcome
    from_hold_minor     bigint NOT NULL CHECK (from_hold_minor >= 0),
    from_balance_minor  bigint NOT NULL CHECK (from_balance_minor >= 0),
    released_minor      bigint NOT NULL CHECK (released_minor >= 0),
    delta_minor         bigint NOT NULL,
    review_id           text,
    fingerprint         bytea NOT NULL,  -- of the record, for replays (rebuilt into Redis)
    actor_key_id        text NOT NULL,
    cleared_at          timestamptz NOT NULL,
    recorded_at         timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, clearing_id)
);
CREATE INDEX clearings_authorization ON clearings (tenant_id, authorization_id);

-- The review queue: authorization REVIEW decisions, clearing mismatches beyond tolerance,
-- force posts and late captures, each with what an operator needs to decide.
CREATE TABLE reviews (
    tenant_id         text NOT NULL,
    review_id         text NOT NULL,  -- "<kind>:<source id>"
    kind              text NOT NULL CHECK (kind IN ('AUTHORIZATION', 'CLEARING_MISMATCH', 'FORCE_POST', 'LATE_CAPTURE')),
    status            text NOT NULL DEFAULT 'OPEN' CHECK (status IN ('OPEN', 'RESOLVED')),
    authorization_id  text,
    clearing_id       text,
    card_id           text NOT NULL,
    amount_minor      bigint NOT NULL,
    currency          char(3) NOT NULL,
    delta_minor       bigint NOT NULL DEFAULT 0,
    detail            text NOT NULL,
    owner             text NOT NULL DEFAULT '',  -- who works it; empty = the tenant's queue
    opened_at         timestamptz NOT NULL,
    resolution        text,
    note              text,
    resolved_by       text,  -- API key id
    resolved_at       timestamptz,
    PRIMARY KEY (tenant_id, review_id)
);
CREATE INDEX reviews_open ON reviews (tenant_id, status, kind, opened_at);
