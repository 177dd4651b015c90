-- Tenants, API keys, cards and the history of every card's policy.
-- Postgres is the source of truth; Redis holds a projection of `cards` rebuilt from here.

CREATE TABLE tenants (
    tenant_id   text PRIMARY KEY CHECK (tenant_id ~ '^[A-Za-z0-9._:-]{1,64}$'),
    name        text NOT NULL CHECK (length(name) BETWEEN 1 AND 256),
    created_at  timestamptz NOT NULL DEFAULT now()
);

-- Secrets are never stored: only SHA-256 of the high-entropy secret (see authz_server/auth.py).
CREATE TABLE api_keys (
    key_id       text PRIMARY KEY,
    tenant_id    text NOT NULL REFERENCES tenants (tenant_id),
    role         smallint NOT NULL CHECK (role IN (1, 2, 3)),  -- PROCESSOR, OPERATOR, ADMIN
    label        text NOT NULL DEFAULT '' CHECK (length(label) <= 256),
    secret_hash  bytea NOT NULL CHECK (length(secret_hash) = 32),
    created_at   timestamptz NOT NULL DEFAULT now(),
    revoked_at   timestamptz
);
CREATE INDEX api_keys_tenant ON api_keys (tenant_id);

CREATE TABLE cards (
    tenant_id       text NOT NULL REFERENCES tenants (tenant_id),
    card_id         text NOT NULL UNIQUE,
    customer_ref    text NOT NULL,
    account_ref     text NOT NULL,
    currency        char(3) NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    state           smallint NOT NULL CHECK (state IN (1, 2, 3)),  -- ACTIVE, FROZEN, CLOSED
    controls        jsonb NOT NULL,
    policy_version  bigint NOT NULL CHECK (policy_version >= 1),
    shard           integer NOT NULL CHECK (shard >= 0),
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, card_id)
);

-- IssueCard idempotency: the key, the hash of the request it was first used with, the card.
CREATE TABLE card_issue_requests (
    tenant_id        text NOT NULL REFERENCES tenants (tenant_id),
    idempotency_key  text NOT NULL,
    request_hash     bytea NOT NULL,
    card_id          text NOT NULL,
    created_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, idempotency_key)
);

-- Every policy version a card has had: the evidence of what a decision was made against.
CREATE TABLE card_versions (
    tenant_id       text NOT NULL,
    card_id         text NOT NULL,
    policy_version  bigint NOT NULL,
    state           smallint NOT NULL,
    controls        jsonb NOT NULL,
    action          text NOT NULL,  -- issue, update_controls, freeze, unfreeze, close
    reason          text NOT NULL DEFAULT '',
    actor_key_id    text NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, card_id, policy_version),
    FOREIGN KEY (tenant_id, card_id) REFERENCES cards (tenant_id, card_id)
);
