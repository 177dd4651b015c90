-- The ledger: every decision's record (authorizations), double-entry transactions and their
-- entries, and the events outbox. Every insert is idempotent on its source: primary keys are
-- derived from the authorization, reversal or clearing id, never generated.

CREATE TABLE authorizations (
    tenant_id         text NOT NULL,
    authorization_id  text NOT NULL,
    card_id           text NOT NULL,
    account_ref       text,  -- NULL when the card was not found
    amount_minor      bigint NOT NULL CHECK (amount_minor > 0),
    currency          char(3) NOT NULL,
    merchant          jsonb NOT NULL,
    channel           smallint NOT NULL,
    decision          smallint NOT NULL CHECK (decision IN (1, 2, 3)),  -- APPROVE, DECLINE, REVIEW
    reason            smallint NOT NULL,
    response_code     text NOT NULL,
    policy_version    bigint NOT NULL,
    exceeded_limit    text NOT NULL DEFAULT '',
    rules             jsonb NOT NULL,
    status            text NOT NULL,  -- PENDING, DECLINED, REVIEW (the lifecycle issue adds more)
    reserved_buckets  text NOT NULL DEFAULT '',  -- window counters the approval reserved
    fingerprint       bytea NOT NULL,
    attempt           text NOT NULL,
    actor_key_id      text NOT NULL,
    shard             integer NOT NULL,
    decided_at        timestamptz NOT NULL,
    recorded_at       timestamptz NOT NULL DEFAULT now(),
    voided_at         timestamptz,  -- a fail-closed answer replaced this attempt's own decision
    PRIMARY KEY (tenant_id, authorization_id)
);
CREATE INDEX authorizations_card ON authorizations (tenant_id, card_id, decided_at);
CREATE INDEX authorizations_decided ON authorizations (decided_at);

CREATE TABLE ledger_transactions (
    tenant_id         text NOT NULL,
    transaction_id    text NOT NULL,  -- "<kind>:<source id>", e.g. "hold:auth-1"
    kind              text NOT NULL,
    source_id         text NOT NULL,
    authorization_id  text,
    created_at        timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, transaction_id),
    UNIQUE (tenant_id, kind, source_id)
);
CREATE INDEX ledger_transactions_authorization ON ledger_transactions (tenant_id, authorization_id);

CREATE TABLE ledger_entries (
    tenant_id       text NOT NULL,
    transaction_id  text NOT NULL,
    line            smallint NOT NULL CHECK (line >= 1),
    account         text NOT NULL CHECK (account IN ('customer_balance', 'reserved_balance', 'settlement_account')),
    account_ref     text NOT NULL,
    direction       smallint NOT NULL CHECK (direction IN (1, 2)),  -- DEBIT, CREDIT
    amount_minor    bigint NOT NULL CHECK (amount_minor > 0),
    currency        char(3) NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    PRIMARY KEY (tenant_id, transaction_id, line),
    FOREIGN KEY (tenant_id, transaction_id) REFERENCES ledger_transactions (tenant_id, transaction_id)
);
CREATE INDEX ledger_entries_account ON ledger_entries (tenant_id, account_ref, currency);
CREATE INDEX ledger_entries_tenant_account ON ledger_entries (tenant_id, account, currency);

-- A ledger transaction balances per currency (sum of debits = sum of credits). Checked at
-- commit, when all its entries are in: a deferred constraint trigger, since a CHECK sees one row.
CREATE FUNCTION ledger_transaction_must_balance() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    unbalanced text;
BEGIN
    SELECT currency INTO unbalanced
    FROM ledger_entries
    WHERE tenant_id = NEW.tenant_id AND transaction_id = NEW.transaction_id
    GROUP BY currency
    HAVING sum(CASE direction WHEN 1 THEN amount_minor ELSE -amount_minor END) <> 0
    LIMIT 1;
    IF unbalanced IS NOT NULL THEN
        RAISE EXCEPTION 'ledger transaction %/% does not balance in %', NEW.tenant_id, NEW.transaction_id, unbalanced
            USING ERRCODE = 'check_violation';
    END IF;
    RETURN NULL;
END $$;

CREATE CONSTRAINT TRIGGER ledger_entries_balance
    AFTER INSERT ON ledger_entries
    DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW EXECUTE FUNCTION ledger_transaction_must_balance();

-- Entries are facts: corrections are new transactions, never edits.
CREATE FUNCTION ledger_entries_are_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'ledger entries are append-only' USING ERRCODE = 'insufficient_privilege';
END $$;

CREATE TRIGGER ledger_entries_append_only
    BEFORE UPDATE OR DELETE ON ledger_entries
    FOR EACH ROW EXECUTE FUNCTION ledger_entries_are_append_only();

-- The outbox. event_id is derived from what the event is about (type, subject, source), so
-- recording an event twice is a no-op; `sequence` orders them for consumers.
CREATE TABLE events (
    event_id     uuid PRIMARY KEY,
    sequence     bigserial NOT NULL UNIQUE,
    tenant_id    text NOT NULL,
    type         text NOT NULL,
    subject      text NOT NULL,
    payload      jsonb NOT NULL,
    occurred_at  timestamptz NOT NULL,
    recorded_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX events_tenant ON events (tenant_id, sequence);
