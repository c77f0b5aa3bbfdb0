package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/orders-oss/orders/internal/envconfig"
	"github.com/orders-oss/orders/internal/eventstore"
	"github.com/orders-oss/orders/internal/relay"
)

func republish(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("ordersctl events republish", flag.ContinueOnError)
	from := fs.Int64("from-position", 0, "republish events with a position above this one")
	to := fs.Int64("to-position", 0, "stop after this position (0: the last event stored when the command starts)")
	batch := fs.Int("batch", 2000, "events per produce batch")
	if help, err := parse(fs, args, stderr); help || err != nil {
		return err
	}
	r := envconfig.New(getenv)
	dbURL := r.Required("DATABASE_URL")
	brokers := r.List("KAFKA_BROKERS", true)
	topic := r.String("EVENTS_TOPIC", "orders.events")
	if err := r.Err(); err != nil {
		return err
	}
	pool, err := pgxpool.New(ctx, dbURL)
	if err != nil {
		return fmt.Errorf("postgres: %w", err)
	}
	defer pool.Close()
	client, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.RequiredAcks(kgo.AllISRAcks()), kgo.ProducerLinger(time.Millisecond))
	if err != nil {
		return fmt.Errorf("kafka: %w", err)
	}
	defer client.Close()
	store := eventstore.New(pool)
	last := *to
	if last == 0 {
		if last, err = store.LastPosition(ctx); err != nil {
			return fmt.Errorf("read last position: %w", err)
		}
	}
	if last <= *from {
		fmt.Fprintf(stdout, "nothing to republish: events end at position %d\n", last)
		return nil
	}
	p := newProgress(stdout, last-*from, "events")
	after := *from
	for after < last {
		evs, err := store.ReadAll(ctx, after, *batch)
		if err != nil {
			return err
		}
		var recs []*kgo.Record
		for _, e := range evs {
			if e.Position > last {
				break
			}
			rec, err := relay.Record(topic, e)
			if err != nil {
				return err
			}
			recs = append(recs, rec)
			after = e.Position
		}
		if len(recs) == 0 {
			break
		}
		// Sync per batch: a failure stops here, having published everything up to the last ack.
		if err := client.ProduceSync(ctx, recs...).FirstErr(); err != nil {
			return fmt.Errorf("produce after position %d: %w (rerun with --from-position %d)", after, err, after-int64(len(recs)))
		}
		p.add(int64(len(recs)))
		if len(evs) < *batch {
			break
		}
	}
	p.done()
	fmt.Fprintf(stdout, "republished events up to position %d to %s\n", after, topic)
	return nil
}
