-- As the BFF's outbox (its migration 20261203000009): the W3C trace context of
-- the call that wrote a message, so the published event continues its trace.
ALTER TABLE outbox ADD COLUMN traceparent text, ADD COLUMN tracestate text;
