-- The outbox relay's leader lease (docs/relay.md, "One publisher at a time"). One row per lease: the
-- relay instance that holds it, the process (incarnation) of that instance, the fencing epoch (raised
-- at every change of holder) and until when it holds. A relay deletes published outbox rows only in
-- the statement that checks it still holds the lease at its epoch, so a paused or partitioned former
-- leader can never commit a batch once another took over.
CREATE TABLE relay_lease (
    name        text        PRIMARY KEY,
    instance    text        NOT NULL,
    process     text        NOT NULL,
    epoch       bigint      NOT NULL,
    expires_at  timestamptz NOT NULL,
    acquired_at timestamptz NOT NULL
);
