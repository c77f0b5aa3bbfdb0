package rebuild

import (
	"context"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/orders-oss/orders/internal/eventstore"
	"github.com/orders-oss/orders/internal/relay"
)

// RepublishOptions say which events Republish sends where.
type RepublishOptions struct {
	Topic string
	// From: events with a position above it. To: up to it (0: the last event stored when Republish
	// starts).
	From, To int64
	// Batch is the events per produce batch (default 2000).
	Batch int
}

// RepublishResult says how far Republish got.
type RepublishResult struct {
	Topic string `json:"topic"`
	// End is the position Republish went to: RepublishOptions.To, or the last event stored.
	End int64 `json:"end_position"`
	// Last is the position of the last event published (From when there was nothing to do).
	Last  int64 `json:"last_position"`
	Count int64 `json:"events"`
}

// ResumeError: producing failed; everything up to Resume was acknowledged, so a rerun from Resume
// (RepublishOptions.From) continues without a hole.
type ResumeError struct {
	Resume int64
	Err    error
}

func (e *ResumeError) Error() string {
	return fmt.Sprintf("produce after position %d: %v", e.Resume, e.Err)
}

func (e *ResumeError) Unwrap() error { return e.Err }

// Republish sends events from the event store (c.Pool), the source of truth, to the events topic
// again, in position order (which is version order per order), keyed by order id, with the same
// record format as the relay (relay.Record): for a topic that lost history, a new Kafka cluster, or to
// re-feed a consumer. Consumers are idempotent by (order id, version), so events they already have
// change nothing.
func Republish(ctx context.Context, c Clients, o RepublishOptions, p Progress) (RepublishResult, error) {
	p = orDiscard(p)
	res := RepublishResult{Topic: o.Topic, Last: o.From}
	batch := o.Batch
	if batch <= 0 {
		batch = 2000
	}
	if c.Pool == nil || len(c.Brokers) == 0 || o.Topic == "" {
		return res, fmt.Errorf("republish: a Postgres pool, Kafka brokers and a topic are required")
	}
	client, err := kgo.NewClient(kgo.SeedBrokers(c.Brokers...), kgo.RequiredAcks(kgo.AllISRAcks()), kgo.ProducerLinger(time.Millisecond))
	if err != nil {
		return res, fmt.Errorf("kafka: %w", err)
	}
	defer client.Close()
	store := eventstore.New(c.Pool)
	last := o.To
	if last == 0 {
		if last, err = store.LastPosition(ctx); err != nil {
			return res, fmt.Errorf("read last position: %w", err)
		}
	}
	res.End = last
	if last <= o.From {
		return res, nil
	}
	p.Phase(PhaseRepublish, last-o.From)
	after := o.From
	for after < last {
		evs, err := store.ReadAll(ctx, after, batch)
		if err != nil {
			return res, err
		}
		var recs []*kgo.Record
		for _, e := range evs {
			if e.Position > last {
				break
			}
			rec, err := relay.Record(o.Topic, e)
			if err != nil {
				return res, err
			}
			recs = append(recs, rec)
			after = e.Position
		}
		if len(recs) == 0 {
			break
		}
		// Sync per batch: a failure stops here, having published everything up to the last ack.
		if err := client.ProduceSync(ctx, recs...).FirstErr(); err != nil {
			return res, &ResumeError{Resume: res.Last, Err: err}
		}
		res.Last = after
		res.Count += int64(len(recs))
		p.Advance(res.Count)
		if len(evs) < batch {
			break
		}
	}
	return res, nil
}
