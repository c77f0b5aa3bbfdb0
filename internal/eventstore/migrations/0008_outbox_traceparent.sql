-- The W3C traceparent of the append that wrote an outbox row (docs/observability.md): the relay
-- continues the request's trace from it into the Kafka record's headers. NULL while tracing is off.
-- A nullable column without a default: adding it rewrites nothing, and rows written by an older
-- release simply have none.
ALTER TABLE outbox ADD COLUMN IF NOT EXISTS traceparent text;
