//go:build integration

package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/orders-oss/orders/internal/order"
	"github.com/orders-oss/orders/internal/readmodel"
	"github.com/orders-oss/orders/internal/testenv"
	"github.com/orders-oss/orders/pkg/events"
)

// TestKillBetweenWriteAndCommit: the projector binary is SIGKILLed after its first read-model
// transaction committed and before its offsets were committed. The restarted projector reads those
// records again; every one of them is a duplicate and the model equals the fold of each order's
// history (an item added twice would show in quantities and totals).
func TestKillBetweenWriteAndCommit(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dbURL := testenv.PostgresURL(t)
	pool, err := pgxpool.New(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	brokers, topic, group := testenv.KafkaBrokers(t), testenv.Topic(t, 3), testenv.Name(t)

	// 60 orders × 4 events: placed, two items added, one quantity changed by adding the same sku again.
	histories := map[string][]events.Envelope{}
	var recs []*kgo.Record
	for i := range 60 {
		id := uuid.NewString()
		payloads := []events.Payload{
			events.OrderPlaced{Customer: events.Customer{ID: fmt.Sprintf("c-%d", i), Name: events.Plain("Ada"), Email: events.Plain("ada@example.com")},
				ShippingAddress: events.Plain(events.Address{Name: "Ada", Line1: "1", City: "London", PostalCode: "N1", Country: "GB"}), Currency: "EUR",
				Items: []events.LineItem{{SKU: "BK-1", Name: "Notes", Quantity: 1, UnitPrice: 1000}}},
			events.OrderItemAdded{Item: events.LineItem{SKU: "PEN-2", Name: "Pen", Quantity: 2, UnitPrice: 150}},
			events.OrderItemAdded{Item: events.LineItem{SKU: "BK-1", Name: "Notes", Quantity: 3, UnitPrice: 1000}},
			events.PaymentConfirmed{Amount: 4300, Currency: "EUR", Reference: fmt.Sprintf("pay-%d", i)},
		}
		for v, p := range payloads {
			typ, sv, data, err := events.EncodeAt(p, 1) // personal data in plain text: no key needed
			if err != nil {
				t.Fatal(err)
			}
			env := events.Envelope{EventID: uuid.Must(uuid.NewV7()), OrderID: id, Version: int64(v + 1), Type: typ, SchemaVersion: sv,
				Data: data, OccurredAt: time.Now().UTC(), RecordedAt: time.Now().UTC()}
			histories[id] = append(histories[id], env)
			b, _ := json.Marshal(env)
			recs = append(recs, &kgo.Record{Topic: topic, Key: []byte(id), Value: b})
		}
	}
	producer, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		t.Fatal(err)
	}
	if err := producer.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	producer.Close()

	bin := filepath.Join(t.TempDir(), "projector-orders")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	env := []string{"DATABASE_URL=" + dbURL, "KAFKA_BROKERS=" + strings.Join(brokers, ","), "EVENTS_TOPIC=" + topic,
		"PROJECTOR_GROUP=" + group, "PROJECTOR_BATCH_SIZE=50",
		"PATH=" + os.Getenv("PATH"), "AUTH_MODE=dev", "AUTH_DEV_DIR=" + t.TempDir(), "PII_MASTER_KEY_FILE=" + masterFile(t),
		"PROJECTOR_SESSION_TIMEOUT=6s", // the killed member holds its partitions until its session ends
	}

	// Run 1: killed by its failpoint right after its first write.
	first := exec.Command(bin)
	first.Env = append(env, "HTTP_ADDR="+testenv.FreeAddr(t), "PROJECTOR_FAILPOINT=kill-after-write")
	var log1 strings.Builder
	first.Stdout, first.Stderr = &log1, &log1
	if err := first.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- first.Wait() }()
	select {
	case err = <-done:
	case <-time.After(60 * time.Second):
		_ = first.Process.Kill()
		t.Fatalf("the projector was not killed by its failpoint within 60 s; log:\n%s", log1.String())
	}
	var exitErr *exec.ExitError
	if !errors.As(err, &exitErr) || exitErr.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Fatalf("first run ended with %v, want SIGKILL by the failpoint; log:\n%s", err, log1.String())
	}
	var writtenEvents int64
	if err := pool.QueryRow(ctx, "SELECT COALESCE(sum(version), 0) FROM orders_read.orders").Scan(&writtenEvents); err != nil {
		t.Fatal(err)
	}
	if writtenEvents == 0 {
		t.Fatal("the first run wrote nothing before it was killed; the test's premise is a committed write")
	}
	offsets, err := testenv.Admin(t).FetchOffsets(ctx, group)
	if err != nil {
		t.Fatal(err)
	}
	if n := len(offsets.Offsets()[topic]); n != 0 {
		t.Fatalf("the killed run committed offsets on %d partitions; the failpoint is before the commit", n)
	}

	// Run 2: reads everything again, from the start.
	addr := testenv.FreeAddr(t)
	second := exec.Command(bin)
	second.Env = append(env, "HTTP_ADDR="+addr)
	logPath := filepath.Join(t.TempDir(), "second.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	second.Stdout, second.Stderr = logFile, logFile
	if err := second.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = second.Process.Kill(); _, _ = second.Process.Wait() }()
	deadline := time.Now().Add(60 * time.Second)
	for {
		var n, total int64
		if err := pool.QueryRow(ctx, "SELECT count(*), COALESCE(sum(version), 0) FROM orders_read.orders").Scan(&n, &total); err != nil {
			t.Fatal(err)
		}
		if n == 60 && total == 240 {
			break
		}
		if time.Now().After(deadline) {
			b, _ := os.ReadFile(logPath)
			t.Fatalf("after 60 s the model holds %d orders, %d events; want 60 and 240; log:\n%s", n, total, b)
		}
		time.Sleep(100 * time.Millisecond)
	}
	dups := scrape(t, "http://"+addr+"/metrics", "projector_duplicates_skipped_total")
	if int64(dups) != writtenEvents {
		t.Errorf("the restarted projector skipped %v duplicates, want %d (exactly the events the killed run wrote)", dups, writtenEvents)
	}
	applied := scrape(t, "http://"+addr+"/metrics", "projector_events_applied_total")
	if int64(applied) != 240-writtenEvents {
		t.Errorf("the restarted projector applied %v events, want %d", applied, 240-writtenEvents)
	}
	ids := make([]string, 0, len(histories))
	for id := range histories {
		ids = append(ids, id)
	}
	docs, err := readmodel.Current(ctx, pool, 1, ids)
	if err != nil {
		t.Fatal(err)
	}
	for id, h := range histories {
		want, err := order.Fold(h)
		if err != nil {
			t.Fatal(err)
		}
		if got := order.FromView(docs[id]); !reflect.DeepEqual(got, want) {
			t.Fatalf("order %s = %+v, want the fold of its history %+v", id, got, want)
		}
	}
	// SIGTERM: a clean stop.
	_ = second.Process.Signal(syscall.SIGTERM)
	if err := second.Wait(); err != nil {
		t.Errorf("after SIGTERM the projector exited with %v, want 0", err)
	}
}

// masterFile is a master key file for the projector (PII_MASTER_KEY_FILE): the events of these tests
// hold their personal data in plain text, so it opens nothing.
func masterFile(t *testing.T) string {
	t.Helper()
	_, path := testenv.MasterKey(t)
	return path
}

// scrape reads one unlabelled sample from a Prometheus text endpoint.
func scrape(t *testing.T, url, name string) float64 {
	t.Helper()
	v, ok := testenv.Metric(url, name)
	if !ok {
		t.Fatalf("no sample %s at %s", name, url)
	}
	return v
}
