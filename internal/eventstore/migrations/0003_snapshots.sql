-- Snapshots of folded orders: an optimisation of loading, never the source of truth. A load starts from
-- the latest snapshot at or below the version it wants and folds only the events after it; a snapshot
-- whose fold_schema_version is not the running code's (order.FoldSchemaVersion), or whose state does
-- not decode, is ignored and replaced. Rows may be deleted at any time (ordersctl snapshots drop).
CREATE TABLE snapshots (
    stream_id           uuid        NOT NULL,                 -- the order id
    version             bigint      NOT NULL CHECK (version >= 1), -- the state after this event
    fold_schema_version integer     NOT NULL,                 -- the fold that took it
    state               jsonb       NOT NULL,                 -- order.EncodeState
    taken_at            timestamptz NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (stream_id, version)
);
