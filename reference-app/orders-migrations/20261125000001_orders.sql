-- The orders service's own tables, in its own schema (`orders`, set as the
-- connection's search_path), with its own migration bookkeeping: it shares a
-- Postgres server with the BFF by default but no table, so it can move to its own
-- database by changing BFF_ORDERS_DATABASE_URL alone.
CREATE TABLE orders (
    id          uuid        PRIMARY KEY,
    user_id     uuid        NOT NULL,
    status      text        NOT NULL DEFAULT 'created' CHECK (status IN ('created', 'cancelled')),
    currency    char(3)     NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    -- At the currency's scale; computed from the items with exact decimals.
    total       numeric(24, 4) NOT NULL CHECK (total >= 0),
    minor_units smallint    NOT NULL CHECK (minor_units BETWEEN 0 AND 4),
    created_at  timestamptz NOT NULL DEFAULT now(),
    cancelled_at timestamptz,
    -- The client's Idempotency-Key, if it sent one, and a hash of the order it
    -- came with: a retry replays the first order, another order under the
    -- same key is refused.
    idempotency_key text CHECK (length(idempotency_key) BETWEEN 1 AND 255),
    request_hash bytea CHECK ((idempotency_key IS NULL) = (request_hash IS NULL)),
    CHECK ((status = 'cancelled') = (cancelled_at IS NOT NULL)),
    UNIQUE (user_id, idempotency_key)
);

-- A user's orders, newest first (ids are UUID v7, so id order is time order).
CREATE INDEX orders_by_user ON orders (user_id, id DESC);

CREATE TABLE order_items (
    order_id   uuid     NOT NULL REFERENCES orders (id) ON DELETE CASCADE,
    position   smallint NOT NULL CHECK (position >= 0),
    sku        text     NOT NULL CHECK (sku ~ '^[A-Za-z0-9._-]{1,64}$'),
    quantity   integer  NOT NULL CHECK (quantity BETWEEN 1 AND 10000),
    unit_price numeric(24, 4) NOT NULL CHECK (unit_price > 0),
    PRIMARY KEY (order_id, position)
);

-- The service's outbox for order events, relayed to the EVENTS stream exactly
-- like the BFF's (same shape, same relay).
CREATE TABLE outbox (
    id              uuid        PRIMARY KEY,
    subject         text        NOT NULL CHECK (subject ~ '^[a-z0-9_]+(\.[a-z0-9_]+)+$'),
    payload         jsonb       NOT NULL,
    request_id      text        CHECK (length(request_id) <= 200),
    created_at      timestamptz NOT NULL DEFAULT now(),
    attempts        integer     NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    last_error      text,
    published_at    timestamptz
);

CREATE INDEX outbox_due ON outbox (next_attempt_at, created_at) WHERE published_at IS NULL;
CREATE INDEX outbox_published ON outbox (published_at) WHERE published_at IS NOT NULL;
