-- Messages for NATS JetStream, written in the same transaction as the change they
-- announce. The relay publishes due rows (claimed with FOR UPDATE SKIP LOCKED, so
-- several instances relay at once), sets published_at after JetStream's ack, and
-- deletes published rows after the retention period. `id` is the Nats-Msg-Id, so a
-- row published twice (a crash between the ack and the update) is stored once.
CREATE TABLE outbox (
    id              uuid        PRIMARY KEY,
    -- Relative to the deployment's subject prefix, e.g. notifications.email.
    subject         text        NOT NULL CHECK (subject ~ '^[a-z0-9_]+(\.[a-z0-9_]+)+$'),
    payload         jsonb       NOT NULL,
    -- The X-Request-Id of the request that wrote it, sent as a header.
    request_id      text        CHECK (length(request_id) <= 200),
    created_at      timestamptz NOT NULL DEFAULT now(),
    attempts        integer     NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    last_error      text,
    published_at    timestamptz
);

CREATE INDEX outbox_due ON outbox (next_attempt_at, created_at) WHERE published_at IS NULL;
CREATE INDEX outbox_published ON outbox (published_at) WHERE published_at IS NOT NULL;
