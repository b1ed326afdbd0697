-- Money: wallets, transfers and a double-entry ledger. Amounts are NUMERIC,
-- exact; their scale is checked against the currency's minor units by the app.
--
-- Each currency has one system wallet (user_id NULL): deposits move money from
-- it, so its balance is minus everything deposited and the sum over all wallets
-- of a currency is always zero. Users' wallets never go negative.
CREATE TABLE wallets (
    id         uuid        PRIMARY KEY,
    user_id    uuid        REFERENCES users (id),
    currency   text        NOT NULL REFERENCES currencies (code),
    balance    numeric     NOT NULL DEFAULT 0,
    created_at timestamptz NOT NULL DEFAULT now(),
    CHECK (user_id IS NULL OR balance >= 0)
);

CREATE UNIQUE INDEX wallets_one_per_currency ON wallets (user_id, currency) WHERE user_id IS NOT NULL;
CREATE UNIQUE INDEX wallets_one_system_per_currency ON wallets (currency) WHERE user_id IS NULL;

CREATE TABLE transfers (
    id             uuid        PRIMARY KEY,
    kind           text        NOT NULL CHECK (kind IN ('transfer', 'deposit')),
    from_wallet_id uuid        NOT NULL REFERENCES wallets (id),
    to_wallet_id   uuid        NOT NULL REFERENCES wallets (id),
    amount         numeric     NOT NULL CHECK (amount > 0),
    currency       text        NOT NULL REFERENCES currencies (code),
    note           text        CHECK (length(note) <= 200),
    created_by     uuid        NOT NULL REFERENCES users (id),
    created_at     timestamptz NOT NULL DEFAULT now(),
    CHECK (from_wallet_id <> to_wallet_id)
);

-- Two entries per transfer, summing to zero: the debit (negative) and the credit.
CREATE TABLE ledger_entries (
    id            uuid        PRIMARY KEY,  -- UUID v7: ordered by time
    transfer_id   uuid        NOT NULL REFERENCES transfers (id),
    wallet_id     uuid        NOT NULL REFERENCES wallets (id),
    amount        numeric     NOT NULL CHECK (amount <> 0),
    balance_after numeric     NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX ledger_entries_wallet ON ledger_entries (wallet_id, id);
CREATE INDEX ledger_entries_transfer ON ledger_entries (transfer_id);

-- The first answer to a request with an Idempotency-Key, replayed to a repeat
-- with the same body; a repeat with another body is refused.
CREATE TABLE idempotency_keys (
    user_id      uuid        NOT NULL REFERENCES users (id),
    scope        text        NOT NULL,
    key          text        NOT NULL CHECK (length(key) BETWEEN 1 AND 255),
    request_hash text        NOT NULL,
    status       smallint    NOT NULL,
    response     jsonb       NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, scope, key)
);
