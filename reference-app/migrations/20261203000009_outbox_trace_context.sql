-- The W3C trace context of the request that wrote a message (`traceparent`,
-- `tracestate`), so the published message, and the notifier's send, continue
-- that request's trace. Null when tracing was off or the row predates this.
ALTER TABLE outbox ADD COLUMN traceparent text, ADD COLUMN tracestate text;
