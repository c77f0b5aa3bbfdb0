//go:build integration

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/orders-oss/orders/internal/auth"
	"github.com/orders-oss/orders/internal/command"
	"github.com/orders-oss/orders/internal/eventstore"
	"github.com/orders-oss/orders/internal/order"
	"github.com/orders-oss/orders/internal/rebuild"
	"github.com/orders-oss/orders/internal/testenv"
	"github.com/orders-oss/orders/pkg/events"
)

func TestSnapshotsVerifyAndDrop(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dbURL, pool := migratedDB(t)
	// Two orders through the command service, which takes a snapshot every 5 events.
	store := eventstore.New(pool)
	master, masterFile := testenv.MasterKey(t)
	keys := testenv.Keyring(t, pool, master)
	svc := &command.Service{Store: store, Keys: keys, MaxRetries: 5}
	svc.Snapshots = command.NewSnapshots(store, 5, 0, slog.New(slog.NewTextHandler(io.Discard, nil))).SealWith(keys)
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); svc.Snapshots.Run(runCtx) }()
	var ids []string
	for range 2 {
		placed, err := svc.Place(ctx, testActor, events.Metadata{Actor: "test"}, order.PlaceOrder{
			Customer:        order.Customer{ID: "c", Name: "Ada", Email: "ada@example.com"},
			ShippingAddress: events.Address{Name: "Ada", Line1: "1", City: "London", PostalCode: "N1", Country: "GB"}, Currency: "EUR",
			Items: []events.LineItem{{SKU: "A", Name: "a", Quantity: 1, UnitPrice: 10}}}, nil)
		if err != nil {
			t.Fatal(err)
		}
		for i := range 11 {
			a := events.Address{Name: "Ada", Line1: strings.Repeat("x", i+1), City: "Paris", PostalCode: "75001", Country: "FR"}
			if _, err := svc.Execute(ctx, testActor, placed.Order.ID, 0, events.Metadata{Actor: "test"}, auth.ChangeOrder, func(st order.State) ([]events.Payload, error) {
				return st.ChangeShippingAddress(a)
			}, nil); err != nil {
				t.Fatal(err)
			}
		}
		ids = append(ids, placed.Order.ID)
	}
	at5and10 := func() int {
		var n int
		if err := pool.QueryRow(ctx, "SELECT count(*) FROM snapshots WHERE version IN (5, 10)").Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	for deadline := time.Now().Add(10 * time.Second); at5and10() < 4; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d snapshots at versions 5 and 10 after 10 s, want 4 (two orders)", at5and10())
		}
	}
	stop()
	<-done
	// Snapshots are written after their command, so a command that loads before the previous snapshot
	// is written may find itself 2×5 events past the last one and take another (version 11 or 12). The
	// rest of this test counts exactly: keep those of versions 5 and 10 only.
	if _, err := pool.Exec(ctx, "DELETE FROM snapshots WHERE version NOT IN (5, 10)"); err != nil {
		t.Fatal(err)
	}

	env := map[string]string{"DATABASE_URL": dbURL, "PII_MASTER_KEY_FILE": masterFile}
	ctl := func(args ...string) (string, error) {
		var out bytes.Buffer
		err := run(ctx, args, func(k string) string { return env[k] }, &out, &out)
		return out.String(), err
	}
	out, err := ctl("snapshots", "verify")
	if err != nil || !strings.Contains(out, "verified 4 of 4 snapshots of 2 orders (fold schema version 2): 0 failures") {
		t.Fatalf("snapshots verify = %v:\n%s", err, out)
	}
	// A snapshot that is not the fold of its events fails the verify (exit 1), shown side by side.
	if _, err := pool.Exec(ctx, `UPDATE snapshots SET state = jsonb_set(state, '{total}', '7') WHERE stream_id = $1 AND version = 10`, ids[0]); err != nil {
		t.Fatal(err)
	}
	// One of another fold schema version is listed, not a failure.
	if _, err := pool.Exec(ctx, `UPDATE snapshots SET fold_schema_version = 99 WHERE stream_id = $1 AND version = 5`, ids[1]); err != nil {
		t.Fatal(err)
	}
	out, err = ctl("snapshots", "verify")
	if !errors.Is(err, errBadSnapshots) || !strings.Contains(out, "differs           "+ids[0]+" at version 10") ||
		!strings.Contains(out, "other_fold_schema "+ids[1]+" at version 5") || !strings.Contains(out, "1 failures, 1 of another fold schema version") {
		t.Fatalf("snapshots verify of a bad snapshot = %v:\n%s", err, out)
	}
	out, err = ctl("snapshots", "verify", "--output", "json")
	var report rebuild.SnapshotReport
	if !errors.Is(err, errBadSnapshots) || json.Unmarshal([]byte(out[strings.Index(out, "{"):]), &report) != nil ||
		report.Failures != 1 || report.Verified != 2 || len(report.Problems) != 2 || report.Problems[0].Kind != rebuild.SnapshotDiffers {
		t.Fatalf("snapshots verify --output json = %v, %+v:\n%s", err, report, out)
	}
	// Drop the bad order's snapshots: the verify passes; then drop them all.
	if out, err := ctl("snapshots", "drop", "--order", ids[0]); err != nil || !strings.Contains(out, "dropped 2 snapshots of order "+ids[0]) {
		t.Fatalf("snapshots drop --order = %v: %s", err, out)
	}
	if out, err := ctl("snapshots", "verify"); err != nil || !strings.Contains(out, "verified 1 of 2 snapshots of 1 orders") {
		t.Fatalf("snapshots verify after the drop = %v:\n%s", err, out)
	}
	if out, err := ctl("snapshots", "drop"); err != nil || !strings.Contains(out, "dropped 2 snapshots of every order") || count(t, pool) != 0 {
		t.Fatalf("snapshots drop = %v: %s", err, out)
	}
	if _, err := ctl("snapshots", "drop", "--order", "nope"); !errors.Is(err, errUsage) {
		t.Errorf("snapshots drop --order nope = %v, want a usage error", err)
	}
}

func count(t *testing.T, pool *pgxpool.Pool) int {
	t.Helper()
	var n int
	if err := pool.QueryRow(context.Background(), "SELECT count(*) FROM snapshots").Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}
