-- Reversals: what each approval still holds, and every reversal as evidence.

ALTER TABLE authorizations
    ADD COLUMN reversed_minor bigint NOT NULL DEFAULT 0 CHECK (reversed_minor >= 0),
    ADD COLUMN remaining_hold_minor bigint NOT NULL DEFAULT 0 CHECK (remaining_hold_minor >= 0);

-- Approvals recorded before this migration hold their whole amount (unless voided).
UPDATE authorizations SET remaining_hold_minor = amount_minor WHERE decision = 1 AND voided_at IS NULL;

CREATE TABLE reversals (
    tenant_id             text NOT NULL,
    reversal_id           text NOT NULL,
    authorization_id      text NOT NULL,
    requested_minor       bigint NOT NULL CHECK (requested_minor >= 0),  -- 0 = the whole remaining hold
    released_minor        bigint NOT NULL CHECK (released_minor > 0),
    remaining_hold_minor  bigint NOT NULL CHECK (remaining_hold_minor >= 0),
    actor_key_id          text NOT NULL,
    reversed_at           timestamptz NOT NULL,
    recorded_at           timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, reversal_id),
    FOREIGN KEY (tenant_id, authorization_id) REFERENCES authorizations (tenant_id, authorization_id)
);
CREATE INDEX reversals_authorization ON reversals (tenant_id, authorization_id);
