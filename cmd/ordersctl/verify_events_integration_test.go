//go:build integration

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/orders-oss/orders/internal/auth"
	"github.com/orders-oss/orders/internal/eventstore"
	"github.com/orders-oss/orders/internal/testenv"
	"github.com/orders-oss/orders/pkg/events"
)

// ordersctl verify events catches an edit, a deletion and an insertion made by the owner with the
// append-only trigger disabled (what a superuser could do too), and names the first broken link.
func TestVerifyEventsCatchesTampering(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dbURL := testenv.PostgresURL(t)
	env := map[string]string{"DATABASE_URL": dbURL}
	ctl := func(args ...string) (string, error) {
		var out bytes.Buffer
		err := run(ctx, args, func(k string) string { return env[k] }, &out, &out)
		return out.String(), err
	}
	if out, err := ctl("migrate"); err != nil {
		t.Fatalf("migrate: %v\n%s", err, out)
	}
	pool, err := pgxpool.New(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	store := eventstore.New(testenv.PostgresAs(t, pool, "orders_command"))
	var ids []string
	for range 4 {
		id := uuid.NewString()
		ids = append(ids, id)
		for v := range 3 {
			typ, sv, data, _ := events.Encode(events.OrderItemRemoved{SKU: "S"})
			if _, err := store.Append(ctx, eventstore.AppendRequest{StreamID: id, ExpectedVersion: int64(v), Events: []eventstore.NewEvent{{
				Type: typ, SchemaVersion: sv, Data: data, OccurredAt: time.Now(), Metadata: events.Metadata{Actor: "ada", ActorRole: "customer"}}}}); err != nil {
				t.Fatal(err)
			}
		}
	}
	if out, err := ctl("verify", "events"); err != nil || !strings.Contains(out, "4 orders, 12 events") || !strings.Contains(out, "0 broken") {
		t.Fatalf("verify events on intact chains = %v\n%s", err, out)
	}
	tamper := func(sql string, args ...any) {
		t.Helper()
		tx, err := pool.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer tx.Rollback(ctx)
		for _, s := range []string{"ALTER TABLE events DISABLE TRIGGER USER", sql, "ALTER TABLE events ENABLE TRIGGER USER"} {
			a := args
			if s != sql {
				a = nil
			}
			if _, err := tx.Exec(ctx, s, a...); err != nil {
				t.Fatalf("%s: %v", s, err)
			}
		}
		if err := tx.Commit(ctx); err != nil {
			t.Fatal(err)
		}
	}
	// An edit of the actor; a deletion in the middle; an event inserted after the versions that follow
	// it were moved up (every trigger disabled, so the chain trigger does not hash it either).
	tamper(`UPDATE events SET metadata = jsonb_set(metadata, '{actor}', '"mallory"') WHERE stream_id = $1 AND version = 2`, ids[0])
	tamper(`DELETE FROM events WHERE stream_id = $1 AND version = 2`, ids[1])
	tamper(`UPDATE events SET version = version + 10 WHERE stream_id = $1 AND version >= 2`, ids[2])
	tamper(`UPDATE events SET version = version - 9 WHERE stream_id = $1 AND version >= 12`, ids[2])
	tamper(`INSERT INTO events (stream_id, version, event_id, type, schema_version, data, metadata, occurred_at, hash)
		SELECT stream_id, 2, gen_random_uuid(), type, schema_version, data, metadata, occurred_at, hash FROM events WHERE stream_id = $1 AND version = 3`, ids[2])
	out, err := ctl("verify", "events", "-o", "json")
	if !errors.Is(err, errBrokenChain) {
		t.Fatalf("verify events after tampering = %v, want errBrokenChain (exit 1)\n%s", err, out)
	}
	var rep eventstore.ChainReport
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	want := map[string]int64{ids[0]: 2, ids[1]: 2, ids[2]: 2}
	if len(rep.Breaks) != 3 {
		t.Fatalf("breaks = %+v, want one per tampered order", rep.Breaks)
	}
	for _, b := range rep.Breaks {
		if want[b.OrderID] != b.Version {
			t.Errorf("break %+v, want version %d", b, want[b.OrderID])
		}
	}
	// --order checks one order; an untouched one holds.
	if out, err := ctl("verify", "events", "--order", ids[3]); err != nil || !strings.Contains(out, "1 orders, 3 events") {
		t.Errorf("verify events --order (intact) = %v\n%s", err, out)
	}
	if out, err := ctl("verify", "events", "--order", ids[0]); !errors.Is(err, errBrokenChain) || !strings.Contains(out, "BROKEN order "+ids[0]+" at version 2") {
		t.Errorf("verify events --order (tampered) = %v\n%s", err, out)
	}
}

// ordersctl token prints a token the development key's JWKS verifies, with the role and customer.
func TestTokenCommand(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	env := map[string]string{"AUTH_MODE": "dev", "AUTH_DEV_DIR": dir}
	var out, errOut bytes.Buffer
	if err := run(context.Background(), []string{"token", "--sub", "ada", "--role", "customer", "--customer-id", "cus_1042", "--ttl", "10m"},
		func(k string) string { return env[k] }, &out, &errOut); err != nil {
		t.Fatalf("token: %v %s", err, errOut.String())
	}
	key, err := auth.EnsureDevKey(dir)
	if err != nil {
		t.Fatal(err)
	}
	v, _ := auth.NewVerifier(auth.VerifierConfig{Keys: auth.NewFileKeySet(key.JWKSPath, 0, 0), Issuer: auth.DevIssuer, Audience: auth.DevAudience})
	p, err := v.Verify(context.Background(), strings.TrimSpace(out.String()))
	if err != nil || p != (auth.Principal{Subject: "ada", Role: auth.Customer, CustomerID: "cus_1042"}) {
		t.Fatalf("the token verifies as %+v, %v", p, err)
	}
	for _, args := range [][]string{
		{"token", "--sub", "ada", "--role", "root"},
		{"token", "--role", "staff"},
		{"token", "--sub", "ada", "--role", "customer"},
		{"token", "--sub", "ada", "--role", "staff", "--customer-id", "c"},
	} {
		if err := run(context.Background(), args, func(k string) string { return env[k] }, &out, &errOut); !errors.Is(err, errUsage) {
			t.Errorf("%v = %v, want a usage error", args, err)
		}
	}
	env["AUTH_MODE"] = "oidc"
	if err := run(context.Background(), []string{"token", "--sub", "a", "--role", "staff"}, func(k string) string { return env[k] }, &out, &errOut); err == nil {
		t.Error("token with AUTH_MODE=oidc succeeded, want a refusal")
	}
}
