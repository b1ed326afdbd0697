-- Notifications a sender accepted, by message id. The notifier looks here
-- before sending: a message JetStream delivers again (its acknowledgement was
-- lost, say when the server leading the consumer died) is acknowledged without
-- being sent twice. The relay deletes rows older than the outbox's retention.
CREATE TABLE notification_deliveries (
    id      uuid        PRIMARY KEY,
    sent_at timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX notification_deliveries_sent_at ON notification_deliveries (sent_at);
