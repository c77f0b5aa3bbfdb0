-- The event store: the source of truth of the whole system. Append-only.

CREATE TABLE events (
    -- Global position: informational ordering only. Transactions commit out of position order, so no
    -- reader may treat "position > last seen" as "everything after what I saw" (see docs/architecture.md).
    position       bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    stream_id      uuid        NOT NULL,                 -- the order id
    version        bigint      NOT NULL CHECK (version >= 1),
    event_id       uuid        NOT NULL UNIQUE,          -- UUID v7
    type           text        NOT NULL,
    schema_version integer     NOT NULL CHECK (schema_version >= 1),
    data           jsonb       NOT NULL,
    metadata       jsonb       NOT NULL,
    occurred_at    timestamptz NOT NULL,
    recorded_at    timestamptz NOT NULL DEFAULT clock_timestamp(),
    -- Optimistic concurrency: two commands that decided on the same version cannot both commit.
    CONSTRAINT events_stream_version_key UNIQUE (stream_id, version)
);

-- Events are immutable: the database itself refuses to change or remove them, whatever the code does.
CREATE FUNCTION events_reject_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'events are append-only: % is not allowed', TG_OP
        USING ERRCODE = 'restrict_violation';
END;
$$;
CREATE TRIGGER events_no_update_delete BEFORE UPDATE OR DELETE ON events
    FOR EACH ROW EXECUTE FUNCTION events_reject_change();
CREATE TRIGGER events_no_truncate BEFORE TRUNCATE ON events
    FOR EACH STATEMENT EXECUTE FUNCTION events_reject_change();

-- The transactional outbox: one row per event, inserted in the same transaction as the event. It is a
-- queue of events not yet published: the relay deletes a row only after the broker acknowledged it, so a
-- transaction that commits late still has its rows here for the next poll. No high-water mark exists.
CREATE TABLE outbox (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    position   bigint      NOT NULL UNIQUE,              -- events.position
    stream_id  uuid        NOT NULL,
    version    bigint      NOT NULL,
    created_at timestamptz NOT NULL DEFAULT clock_timestamp()
);

-- Idempotency-Key of POST /orders: the first response, kept so that a retry returns it unchanged.
CREATE TABLE idempotency_keys (
    key          text        PRIMARY KEY,
    request_hash bytea       NOT NULL,
    order_id     uuid        NOT NULL,
    status       integer     NOT NULL,
    response     bytea       NOT NULL,                -- the exact bytes answered first
    created_at   timestamptz NOT NULL DEFAULT clock_timestamp()
);
