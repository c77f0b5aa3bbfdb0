-- Idempotency keys belong to a principal and expire (docs/security.md). Two callers may use the same key
-- (the primary key is the principal's scope, the token's subject, and the key), every command that records
-- events may carry one (not only POST /orders), and a key is forgotten after IDEMPOTENCY_TTL: the command
-- service deletes expired rows periodically, and a key found expired is deleted before it is used again.
-- Keys recorded before this migration belong to no principal (scope ''), so nobody can replay them, and
-- expire a day after they were made.
ALTER TABLE idempotency_keys ADD COLUMN scope text NOT NULL DEFAULT '';
ALTER TABLE idempotency_keys ADD COLUMN expires_at timestamptz;
UPDATE idempotency_keys SET expires_at = created_at + interval '24 hours';
ALTER TABLE idempotency_keys ALTER COLUMN expires_at SET NOT NULL;
ALTER TABLE idempotency_keys ALTER COLUMN scope DROP DEFAULT;
ALTER TABLE idempotency_keys DROP CONSTRAINT idempotency_keys_pkey;
-- The same constraint name as before: the append maps a violation of it to "key already used".
ALTER TABLE idempotency_keys ADD CONSTRAINT idempotency_keys_pkey PRIMARY KEY (scope, key);
CREATE INDEX idempotency_keys_expires_at ON idempotency_keys (expires_at);
