-- Personal data (docs/privacy.md): crypto-shredding and erasure.
--
-- pii_data_keys holds one AES-256 data key per customer, wrapped (AES-256-GCM) with a master key that
-- never enters the database (PII_MASTER_KEY_FILE; master_key_id is its fingerprint, for rotation). The
-- events of the schema versions that seal personal data name the key that sealed each field; deleting a
-- customer's row makes what it sealed unreadable in every copy: events, topic records, snapshots.
CREATE TABLE pii_data_keys (
    key_id        uuid        PRIMARY KEY,
    customer_id   text        NOT NULL,
    wrapped_key   bytea       NOT NULL,  -- nonce || AES-256-GCM(master key, data key; associated data: key_id)
    master_key_id text        NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT clock_timestamp(),
    CONSTRAINT pii_data_keys_customer_key UNIQUE (customer_id)
);

-- An erasure request (DELETE /customers/{customer_id}/personal-data) and its progress. It holds no
-- personal data: the customer's id (pseudonymous, as in the events), who asked, and the keys deleted.
CREATE TABLE pii_erasures (
    erasure_id     uuid        PRIMARY KEY,
    customer_id    text        NOT NULL,
    requested_by   text        NOT NULL,  -- the token subject of who asked
    requested_role text        NOT NULL,
    requested_at   timestamptz NOT NULL DEFAULT clock_timestamp(),
    erased_keys    uuid[]      NOT NULL,  -- the data keys the request deleted
    orders         integer     NOT NULL DEFAULT 0,  -- the customer's orders found so far
    orders_erased  integer     NOT NULL DEFAULT 0,  -- of them, those done (erasure recorded, or nothing to erase)
    completed_at   timestamptz
);
CREATE INDEX pii_erasures_customer ON pii_erasures (customer_id, requested_at DESC);
CREATE INDEX pii_erasures_open ON pii_erasures (requested_at) WHERE completed_at IS NULL;

-- The orders of a customer, which an erasure must find: the customer id of each order's first event.
-- (On a large store, create it beforehand with CREATE INDEX CONCURRENTLY under this name: this
-- statement then does nothing, and the migration does not hold a lock on events while it builds.)
CREATE INDEX IF NOT EXISTS events_order_customer ON events ((data -> 'customer' ->> 'id')) WHERE type = 'OrderPlaced';

-- An idempotency record no longer keeps the first answer (it held the customer's name, email and
-- address): it keeps the order's version then, and a retry is answered with the order folded at that
-- version, which shows what the first answer showed, or null once erased. Rows written before keep their
-- answer (version NULL) until they expire, or until an erasure of their customer deletes them.
ALTER TABLE idempotency_keys ADD COLUMN version bigint;

-- Snapshots taken before this release hold personal data in plain text (and are of fold schema version
-- 1, which this release does not read): they go. New ones hold it sealed.
DELETE FROM snapshots;

-- orders_keyreader may read the wrapped data keys, and nothing else: projector-search logs in as it
-- (it must open personal data to index it). Created where missing, as 0006 does for the other roles.
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'orders_keyreader') THEN
        BEGIN
            CREATE ROLE orders_keyreader NOLOGIN;
        EXCEPTION WHEN duplicate_object OR unique_violation THEN
            NULL; -- another database's migration created it at the same moment
        END;
    END IF;
    IF NOT pg_has_role(current_user, 'orders_keyreader', 'MEMBER') THEN
        BEGIN
            GRANT orders_keyreader TO CURRENT_USER;
        EXCEPTION WHEN unique_violation THEN
            NULL;
        END;
    END IF;
END $$;

REVOKE ALL ON pii_data_keys, pii_erasures FROM PUBLIC;

-- The command service seals (it makes a customer's key on first use), opens, and erases (deletes a
-- customer's keys, records and completes erasures).
GRANT SELECT, INSERT, DELETE ON pii_data_keys TO orders_command;
GRANT SELECT, INSERT, UPDATE ON pii_erasures TO orders_command;
-- Both projectors open personal data to build their read models: the key, never whose it is.
GRANT SELECT (key_id, wrapped_key, master_key_id) ON pii_data_keys TO orders_keyreader, orders_projector;
-- The relay, the query service and the key reader see nothing else of it; the relay reads no key at all
-- (the public topic carries no personal data, and it relays sealed events as they are).
