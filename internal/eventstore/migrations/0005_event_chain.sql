-- Tamper evidence (docs/security.md): every event stores a SHA-256 hash chained to the stored hash of its
-- stream's previous event. The hash is computed by the database inside the append itself (a BEFORE INSERT
-- trigger, so the INSERT statement that stores the event stores its hash too, in the same round trip),
-- from the previous event's hash as stored, read in the same statement. Whoever appends cannot choose it,
-- and every writer gets it, this release or an older one still running during a rollout.
-- `ordersctl verify events` recomputes every chain and reports the first broken link of each stream.
--
-- The chained bytes of an event, in order (lengths and integers big-endian):
--   prev hash (32 bytes; 32 zero bytes for the first hashed event of a stream)
--   stream_id (16 bytes) | version (int8) | event_id (16 bytes)
--   length (int4) + type (UTF-8) | schema_version (int4)
--   occurred_at, recorded_at (int8 each: microseconds since the Unix epoch)
--   length (int4) + data::text (UTF-8) | length (int4) + metadata::text (UTF-8)
-- data::text and metadata::text are Postgres' own rendering of the stored jsonb, which does not depend on
-- how the client wrote it (key order, spaces): the verifier reads the same rendering.
ALTER TABLE events ADD COLUMN hash bytea;

-- Every event appended from now on has a hash; those stored before this migration have none and are not
-- checked (NOT VALID). Their chain starts at the first event hashed. events_chain_start remembers the last
-- position stored before the chain existed: a later event without a hash is a broken link.
ALTER TABLE events ADD CONSTRAINT events_hash_present CHECK (hash IS NOT NULL) NOT VALID;
CREATE TABLE events_chain_start (legacy_until bigint NOT NULL);
INSERT INTO events_chain_start SELECT COALESCE(max(position), 0) FROM events;

CREATE FUNCTION events_chain_hash(prev bytea, stream_id uuid, version bigint, event_id uuid, type text,
    schema_version integer, occurred_at timestamptz, recorded_at timestamptz, data jsonb, metadata jsonb)
RETURNS bytea LANGUAGE sql STABLE STRICT PARALLEL SAFE AS $$
SELECT sha256(
    prev
    || uuid_send(stream_id) || int8send(version) || uuid_send(event_id)
    || int4send(octet_length(convert_to(type, 'UTF8'))) || convert_to(type, 'UTF8')
    || int4send(schema_version)
    || int8send((extract(epoch FROM occurred_at) * 1000000)::bigint)
    || int8send((extract(epoch FROM recorded_at) * 1000000)::bigint)
    || int4send(octet_length(convert_to(data::text, 'UTF8'))) || convert_to(data::text, 'UTF8')
    || int4send(octet_length(convert_to(metadata::text, 'UTF8'))) || convert_to(metadata::text, 'UTF8'))
$$;

-- The previous event of version N is version N-1 of the same stream as stored: committed before, or
-- inserted earlier by the same statement (a multi-event append inserts in version order, and a row-level
-- BEFORE trigger sees the rows its statement already inserted). When it is not there the append fails
-- (constraint events_chain_previous): a stream never gets a version whose predecessor is not stored.
-- Concurrency: two appends of version N both read N-1 and compute a hash; the unique (stream_id, version)
-- constraint lets one commit, the other fails as a version conflict and decides again.
CREATE FUNCTION events_chain_link() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    prev bytea;
BEGIN
    IF NEW.version = 1 THEN
        prev := decode(repeat('00', 32), 'hex');
    ELSE
        SELECT COALESCE(e.hash, decode(repeat('00', 32), 'hex')) INTO prev
        FROM events e WHERE e.stream_id = NEW.stream_id AND e.version = NEW.version - 1;
        IF NOT FOUND THEN
            RAISE EXCEPTION 'event % of stream % has no stored predecessor', NEW.version, NEW.stream_id
                USING ERRCODE = 'foreign_key_violation', CONSTRAINT = 'events_chain_previous';
        END IF;
    END IF;
    NEW.hash := events_chain_hash(prev, NEW.stream_id, NEW.version, NEW.event_id, NEW.type, NEW.schema_version,
        NEW.occurred_at, NEW.recorded_at, NEW.data, NEW.metadata);
    RETURN NEW;
END;
$$;
CREATE TRIGGER events_chain_link BEFORE INSERT ON events FOR EACH ROW EXECUTE FUNCTION events_chain_link();
