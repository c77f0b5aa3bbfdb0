//go:build integration

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/orders-oss/orders/internal/eventstore"
	"github.com/orders-oss/orders/internal/testenv"
	"github.com/orders-oss/orders/pkg/events"
)

func TestRepublishFromTheEventStore(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dbURL := testenv.PostgresURL(t)
	brokers := testenv.KafkaBrokers(t)
	topic := testenv.Topic(t, 3)
	pl, err := pgxpool.New(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer pl.Close()
	if err := eventstore.Migrate(ctx, pl); err != nil {
		t.Fatal(err)
	}
	store := eventstore.New(pl)
	orders := []string{uuid.NewString(), uuid.NewString(), uuid.NewString()}
	for i := range 30 {
		o := orders[i%3]
		if _, _, err := store.Update(ctx, o, 5, func(h []events.Envelope) ([]eventstore.NewEvent, error) {
			return []eventstore.NewEvent{{Type: events.TypeOrderItemRemoved, SchemaVersion: 1, Data: json.RawMessage(fmt.Sprintf(`{"sku":"S-%d"}`, i)),
				OccurredAt: time.Now()}}, nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	env := map[string]string{"DATABASE_URL": dbURL, "KAFKA_BROKERS": strings.Join(brokers, ","), "EVENTS_TOPIC": topic}
	var out bytes.Buffer
	if err := run(ctx, []string{"events", "republish", "--batch", "7"}, func(k string) string { return env[k] }, &out, &out); err != nil {
		t.Fatalf("republish: %v\n%s", err, out.String())
	}
	if !strings.Contains(out.String(), "republished events up to position 30") {
		t.Errorf("output = %q", out.String())
	}
	// Then only the tail.
	out.Reset()
	if err := run(ctx, []string{"events", "republish", "--from-position", "27"}, func(k string) string { return env[k] }, &out, &out); err != nil {
		t.Fatal(err)
	}

	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	perOrder := map[string][]int64{}
	n := 0
	for n < 33 {
		fs := cl.PollFetches(rctx)
		if rctx.Err() != nil {
			t.Fatalf("read %d records, want 33 (30, then the 3 after position 27)", n)
		}
		fs.EachRecord(func(r *kgo.Record) {
			var e events.Envelope
			if err := json.Unmarshal(r.Value, &e); err != nil {
				t.Fatal(err)
			}
			perOrder[e.OrderID] = append(perOrder[e.OrderID], e.Version)
			n++
		})
	}
	for _, o := range orders {
		v := perOrder[o]
		if len(v) != 11 {
			t.Fatalf("order %s: %d records, want 10 + 1 republished again", o, len(v))
		}
		for i := 1; i < 10; i++ {
			if v[i] != v[i-1]+1 {
				t.Fatalf("order %s: versions %v are not in order", o, v)
			}
		}
		if v[10] != 10 {
			t.Errorf("order %s: the tail republish sent version %d, want 10", o, v[10])
		}
	}
}
