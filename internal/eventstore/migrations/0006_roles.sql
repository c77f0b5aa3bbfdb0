-- Least-privilege roles (docs/security.md). Each service connects as a login role that is (or is a member
-- of) one of these; the owner of the tables (the role that runs the migrations and ordersctl) is used by
-- nothing else. No service role may update or delete events, nor change the schema.
--   orders_command    append events, outbox and idempotency rows; read events, idempotency rows, snapshots
--   orders_relay      read events; read and delete the outbox; hold the relay lease
--   orders_projector  create and own the read model's schemas (orders_read, orders_gN); nothing here
--   orders_query      read the read model's views (granted by the read model when it makes them)
-- Roles are cluster-wide while grants are per database: this runs in every database of the cluster that
-- holds an event store (each test has its own), so creating a role tolerates one made meanwhile by another
-- database's migration. Deployments that create the roles beforehand (with LOGIN and a password: the
-- local stack's deploy/local/stack.sh, CloudNativePG managed roles) leave nothing to create; the owner
-- then needs no CREATEROLE, only membership in each role (given here when it lacks it and may).
DO $$
DECLARE
    r text;
BEGIN
    FOREACH r IN ARRAY ARRAY['orders_command', 'orders_relay', 'orders_projector', 'orders_query'] LOOP
        IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = r) THEN
            BEGIN
                EXECUTE format('CREATE ROLE %I NOLOGIN', r);
            EXCEPTION WHEN duplicate_object OR unique_violation THEN
                NULL; -- another database's migration created it at the same moment
            END;
        END IF;
        -- The owner acts as the projector for the read model's DDL (ordersctl rebuild), and tests check a
        -- service's rights with SET ROLE: it is a member of each role.
        IF NOT pg_has_role(current_user, r, 'MEMBER') THEN
            BEGIN
                EXECUTE format('GRANT %I TO %I', r, current_user);
            EXCEPTION WHEN unique_violation THEN
                NULL;
            END;
        END IF;
    END LOOP;
END $$;

REVOKE ALL ON events, outbox, idempotency_keys, relay_lease, schema_migrations, events_chain_start FROM PUBLIC;

GRANT SELECT, INSERT ON events TO orders_command;
GRANT INSERT ON outbox TO orders_command;
GRANT SELECT, INSERT, DELETE ON idempotency_keys TO orders_command;
GRANT SELECT ON schema_migrations TO orders_command, orders_relay;

GRANT SELECT ON events TO orders_relay;
GRANT SELECT, DELETE ON outbox TO orders_relay;
GRANT SELECT, INSERT, UPDATE ON relay_lease TO orders_relay;

-- Snapshots (a later or parallel migration): readable and writable by the command service, which makes
-- them; they are a cache of folds, never the source of truth, and the chain does not cover them.
DO $$
BEGIN
    IF to_regclass('snapshots') IS NOT NULL THEN
        GRANT SELECT, INSERT, UPDATE, DELETE ON snapshots TO orders_command;
    END IF;
END $$;

-- The projector creates the read model's schemas at start (internal/readmodel), and owns them.
DO $$
BEGIN
    EXECUTE format('GRANT CREATE ON DATABASE %I TO orders_projector', current_database());
END $$;
