//go:build integration

package pii_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/orders-oss/orders/internal/eventstore"
	"github.com/orders-oss/orders/internal/pii"
	"github.com/orders-oss/orders/internal/testenv"
	"github.com/orders-oss/orders/pkg/events"
)

func migrated(t *testing.T) *pgxpool.Pool {
	t.Helper()
	owner := testenv.Postgres(t)
	if err := eventstore.Migrate(context.Background(), owner); err != nil {
		t.Fatal(err)
	}
	return owner
}

func sealOpen(t *testing.T, ctx context.Context, k *pii.Keyring, customer string) (events.Sealed, []byte) {
	t.Helper()
	s, err := k.Sealer(ctx, customer)
	if err != nil {
		t.Fatal(err)
	}
	aad := events.AssociatedData("o-1", events.FieldCustomerEmail)
	sealed, err := s.Seal([]byte("ada@example.com"), aad)
	if err != nil {
		t.Fatal(err)
	}
	return sealed, aad
}

// One key per customer, even when many replicas ask for it at once; the command service's role makes
// it, the projectors' roles open what it sealed; once erased, nothing opens it (after the cache TTL in
// a replica that read it before), and the customer gets a new key.
func TestKeyring(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	owner := migrated(t)
	master, _ := testenv.MasterKey(t)
	command := pii.New(testenv.PostgresAs(t, owner, "orders_command"), master, pii.Options{CacheTTL: 300 * time.Millisecond})
	var wg sync.WaitGroup
	ids := make([]string, 16)
	for i := range ids {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Each its own keyring: replicas share no cache.
			k, err := pii.New(testenv.PostgresAs(t, owner, "orders_command"), master, pii.Options{}).Key(ctx, "cus_1")
			if err != nil {
				t.Error(err)
				return
			}
			ids[i] = k.KeyID()
		}()
	}
	wg.Wait()
	for _, id := range ids {
		if id != ids[0] || id == "" {
			t.Fatalf("concurrent first uses made several keys: %v", ids)
		}
	}
	sealed, aad := sealOpen(t, ctx, command, "cus_1")
	if sealed.KeyID != ids[0] {
		t.Errorf("sealed with %s, want the customer's key %s", sealed.KeyID, ids[0])
	}
	for _, role := range []string{"orders_projector", "orders_keyreader"} {
		r := pii.New(testenv.PostgresAs(t, owner, role), master, pii.Options{})
		o, err := r.Opener(ctx, []string{sealed.KeyID})
		if err != nil {
			t.Fatalf("%s: %v", role, err)
		}
		if got, err := o.Open(sealed, aad); err != nil || string(got) != "ada@example.com" {
			t.Errorf("%s opens %q, %v", role, got, err)
		}
	}
	// Another master key cannot unwrap it.
	other, _ := testenv.MasterKey(t)
	if _, err := pii.New(owner, other, pii.Options{}).Opener(ctx, []string{sealed.KeyID}); err == nil {
		t.Error("a keyring with another master key opened the key")
	}

	reader := pii.New(testenv.PostgresAs(t, owner, "orders_keyreader"), master, pii.Options{CacheTTL: 300 * time.Millisecond})
	if _, err := reader.Opener(ctx, []string{sealed.KeyID}); err != nil { // cached now
		t.Fatal(err)
	}
	deleted, err := command.Erase(ctx, testenv.PostgresAs(t, owner, "orders_command"), "cus_1")
	if err != nil || len(deleted) != 1 || deleted[0] != sealed.KeyID {
		t.Fatalf("Erase = %v, %v", deleted, err)
	}
	o, _ := command.Opener(ctx, []string{sealed.KeyID})
	if _, err := o.Open(sealed, aad); !errors.Is(err, events.ErrErased) {
		t.Errorf("the erasing replica opens after the erasure: %v", err)
	}
	time.Sleep(350 * time.Millisecond) // the other replica's cache expires
	o, _ = reader.Opener(ctx, []string{sealed.KeyID})
	if _, err := o.Open(sealed, aad); !errors.Is(err, events.ErrErased) {
		t.Errorf("a replica opens %v after the erasure and its cache TTL, want events.ErrErased", err)
	}
	if again, _ := sealOpen(t, ctx, command, "cus_1"); again.KeyID == sealed.KeyID {
		t.Error("the customer got its erased key back")
	}
}

// The roles: the key reader and the projector read the wrapped keys but not whose they are; the relay
// and the query service read nothing of them; no service role may change a key.
func TestKeyRoles(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	owner := migrated(t)
	master, _ := testenv.MasterKey(t)
	if _, err := pii.New(owner, master, pii.Options{}).Key(ctx, "cus_1"); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		role, sql string
		allowed   bool
	}{
		{"orders_keyreader", "SELECT key_id, wrapped_key, master_key_id FROM pii_data_keys", true},
		{"orders_keyreader", "SELECT customer_id FROM pii_data_keys", false},
		{"orders_keyreader", "SELECT count(*) FROM events", false},
		{"orders_keyreader", "SELECT count(*) FROM pii_erasures", false},
		{"orders_projector", "SELECT customer_id FROM pii_data_keys", false},
		{"orders_relay", "SELECT key_id FROM pii_data_keys", false},
		{"orders_query", "SELECT key_id FROM pii_data_keys", false},
		{"orders_command", "UPDATE pii_data_keys SET wrapped_key = wrapped_key", false},
		{"orders_keyreader", "DELETE FROM pii_data_keys", false},
		{"orders_command", "DELETE FROM pii_data_keys WHERE customer_id = 'nobody'", true},
	} {
		_, err := testenv.PostgresAs(t, owner, c.role).Exec(ctx, c.sql)
		var pe *pgconn.PgError
		denied := errors.As(err, &pe) && pe.Code == "42501"
		if c.allowed && err != nil || !c.allowed && !denied {
			t.Errorf("%s: %s = %v; allowed: %v", c.role, c.sql, err, c.allowed)
		}
	}
}

// Rotation re-wraps every key with the new master key; keyrings holding only the new one (and the old
// one as previous during the rotation) open everything; the data keys, and so the sealed data, do not
// change.
func TestRotate(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	owner := migrated(t)
	old, _ := testenv.MasterKey(t)
	var sealed []events.Sealed
	for _, c := range []string{"a", "b", "c"} {
		s, _ := sealOpen(t, ctx, pii.New(owner, old, pii.Options{}), c)
		sealed = append(sealed, s)
	}
	aad := events.AssociatedData("o-1", events.FieldCustomerEmail)
	next, _ := testenv.MasterKey(t)
	if _, err := pii.Rotate(ctx, owner, next, nil, 2); err == nil || !strings.Contains(err.Error(), old.ID()) {
		t.Errorf("Rotate without the old key = %v, want an error naming it", err)
	}
	during := pii.New(owner, next, pii.Options{Previous: []pii.MasterKey{old}, CacheTTL: -1})
	res, err := pii.Rotate(ctx, owner, next, []pii.MasterKey{old}, 2)
	if err != nil || res.Rewrapped != 3 || res.Total != 3 || res.MasterKeyID != next.ID() {
		t.Fatalf("Rotate = %+v, %v", res, err)
	}
	if res, err := pii.Rotate(ctx, owner, next, nil, 2); err != nil || res.Rewrapped != 0 {
		t.Errorf("Rotate again = %+v, %v; want nothing left", res, err)
	}
	st, err := pii.ReadStatus(ctx, owner)
	if err != nil || st.DataKeys != 3 || st.ByMasterKey[next.ID()] != 3 {
		t.Errorf("ReadStatus = %+v, %v", st, err)
	}
	for _, k := range []*pii.Keyring{during, pii.New(owner, next, pii.Options{})} {
		for _, s := range sealed {
			o, err := k.Opener(ctx, []string{s.KeyID})
			if err != nil {
				t.Fatal(err)
			}
			if got, err := o.Open(s, aad); err != nil || string(got) != "ada@example.com" {
				t.Errorf("open after the rotation = %q, %v", got, err)
			}
		}
	}
	if _, err := pii.New(owner, old, pii.Options{}).Opener(ctx, []string{sealed[0].KeyID}); err == nil {
		t.Error("the old master key still unwraps after the rotation")
	}
}

// A customer's new data key is stored by the append of the first events it sealed, in their
// transaction: not before it, not when it fails, and one key per customer when two replicas made one
// each (the second append fails with eventstore.ErrDataKeyExists and stores nothing).
func TestNewKeyIsStoredWithItsFirstEvents(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	owner := migrated(t)
	master, _ := testenv.MasterKey(t)
	pool := testenv.PostgresAs(t, owner, "orders_command")
	store := eventstore.New(pool)
	a := pii.New(pool, master, pii.Options{CacheTTL: time.Minute})
	b := pii.New(testenv.PostgresAs(t, owner, "orders_command"), master, pii.Options{CacheTTL: time.Minute})
	keysOf := func(customer string) []string {
		t.Helper()
		rows, _ := owner.Query(ctx, `SELECT key_id::text FROM pii_data_keys WHERE customer_id = $1`, customer)
		ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			t.Fatal(err)
		}
		return ids
	}
	ev := []eventstore.NewEvent{{Type: "Test", SchemaVersion: 1, Data: []byte(`{}`), OccurredAt: time.Now()}}

	sa, rowA, err := a.SealerFor(ctx, "cus_9")
	if err != nil || rowA == nil || rowA.KeyID != sa.(*pii.Key).KeyID() {
		t.Fatalf("SealerFor(a new customer) = %v, %+v, %v; want a new key and its row", sa, rowA, err)
	}
	sb, rowB, err := b.SealerFor(ctx, "cus_9")
	if err != nil || rowB == nil || rowB.KeyID == rowA.KeyID {
		t.Fatalf("SealerFor on another replica = %v, %+v, %v; want another new key", sb, rowB, err)
	}
	if ids := keysOf("cus_9"); len(ids) != 0 {
		t.Fatalf("keys stored before any append: %v", ids)
	}
	// An append that fails (the stream is not new) stores no key.
	taken := uuid.NewString()
	if _, err := store.Append(ctx, eventstore.AppendRequest{StreamID: taken, Events: ev}); err != nil {
		t.Fatal(err)
	}
	if _, err := store.Append(ctx, eventstore.AppendRequest{StreamID: taken, Events: ev, DataKey: rowA}); !errors.Is(err, eventstore.ErrVersionConflict) {
		t.Fatalf("append to a taken stream = %v, want ErrVersionConflict", err)
	}
	if ids := keysOf("cus_9"); len(ids) != 0 {
		t.Fatalf("a failed append stored the key: %v", ids)
	}
	first, second := uuid.NewString(), uuid.NewString()
	if _, err := store.Append(ctx, eventstore.AppendRequest{StreamID: first, Events: ev, DataKey: rowA}); err != nil {
		t.Fatal(err)
	}
	a.Stored("cus_9", sa)
	if _, err := store.Append(ctx, eventstore.AppendRequest{StreamID: second, Events: ev, DataKey: rowB}); !errors.Is(err, eventstore.ErrDataKeyExists) {
		t.Fatalf("the other replica's append with its own new key = %v, want ErrDataKeyExists", err)
	}
	if got, _ := store.Read(ctx, second, eventstore.Range{}); len(got) != 0 {
		t.Errorf("the refused append stored %d events", len(got))
	}
	if ids := keysOf("cus_9"); len(ids) != 1 || ids[0] != rowA.KeyID {
		t.Fatalf("keys stored = %v, want %s only", ids, rowA.KeyID)
	}
	// Asked again, the other replica finds the stored key; what it seals opens elsewhere.
	again, row, err := b.SealerFor(ctx, "cus_9")
	if err != nil || row != nil || again.(*pii.Key).KeyID() != rowA.KeyID {
		t.Fatalf("SealerFor after the append = %v, %+v, %v; want the stored key %s", again, row, err, rowA.KeyID)
	}
	aad := events.AssociatedData(first, events.FieldCustomerEmail)
	sealed, err := sa.Seal([]byte("ada@example.com"), aad)
	if err != nil {
		t.Fatal(err)
	}
	o, err := pii.New(testenv.PostgresAs(t, owner, "orders_projector"), master, pii.Options{}).Opener(ctx, []string{sealed.KeyID})
	if err != nil {
		t.Fatal(err)
	}
	if got, err := o.Open(sealed, aad); err != nil || string(got) != "ada@example.com" {
		t.Errorf("the projector opens %q, %v", got, err)
	}
	// The first replica cached it on Stored: it seals with it without asking Postgres.
	if cached, row, err := a.SealerFor(ctx, "cus_9"); err != nil || row != nil || cached != sa {
		t.Errorf("SealerFor after Stored = %v, %+v, %v; want the cached key", cached, row, err)
	}
}
