package projector

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/orders-oss/orders/pkg/events"
	"github.com/orders-oss/orders/services/projector-search/searchindex"
)

// ErrOffsetBelowLogStart: the group's committed position was deleted from the topic; continuing would
// silently skip events, so the projector stops.
var ErrOffsetBelowLogStart = errors.New("committed offset is below the topic's log start offset")

// Metrics of the loop, on its own registry.
type Metrics struct {
	Registry   *prometheus.Registry
	Applied    prometheus.Counter
	Duplicates prometheus.Counter
	Parked     prometheus.Counter
	Freshness  prometheus.Histogram
	Lag        *prometheus.GaugeVec
}

// NewMetrics registers the projector's metrics.
func NewMetrics() *Metrics {
	m := &Metrics{
		Registry:   prometheus.NewRegistry(),
		Applied:    prometheus.NewCounter(prometheus.CounterOpts{Name: "projector_events_applied_total", Help: "Events folded into the read model."}),
		Duplicates: prometheus.NewCounter(prometheus.CounterOpts{Name: "projector_duplicates_skipped_total", Help: "Events at or below the version already applied."}),
		Parked:     prometheus.NewCounter(prometheus.CounterOpts{Name: "projector_events_parked_total", Help: "Events set aside because their order failed (see the parked index)."}),
		Freshness: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "projector_freshness_seconds",
			Help:    "Time from an event's commit in the event store to its write in the read model.",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60}}),
		Lag: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "projector_lag_records",
			Help: "Records of the partition not yet committed by the group (end offset minus committed offset)."}, []string{"partition"}),
	}
	m.Registry.MustRegister(m.Applied, m.Duplicates, m.Parked, m.Freshness, m.Lag)
	return m
}

// Loop consumes the events topic in a consumer group and folds each batch into the index. Offsets are
// committed by hand, only after the batch's documents were written.
type Loop struct {
	mu sync.Mutex // a batch and a replay never run at once

	Client  *kgo.Client // consumer group client: DisableAutoCommit, BlockRebalanceOnPoll
	Index   *searchindex.Index
	Parking *Parking
	Topic   string
	Group   string
	Log     *slog.Logger
	Metrics *Metrics
}

// ConsumerOptions are the kgo options a Loop's client needs.
func ConsumerOptions(brokers []string, topic, group string) []kgo.Opt {
	return []kgo.Opt{
		kgo.SeedBrokers(brokers...), kgo.ConsumerGroup(group), kgo.ConsumeTopics(topic),
		kgo.DisableAutoCommit(),                           // commit only after the read model write
		kgo.BlockRebalanceOnPoll(),                        // no rebalance between a poll and its commit
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), // a new group reads everything
		kgo.FetchMaxWait(100 * time.Millisecond),
	}
}

// CheckOffsets fails when the group's committed offset on some partition is below the topic's log
// start offset (records it has not read were deleted). Run it before consuming.
func CheckOffsets(ctx context.Context, adm *kadm.Client, topic, group string) error {
	committed, err := adm.FetchOffsets(ctx, group)
	if err != nil {
		return fmt.Errorf("fetch committed offsets of %s: %w", group, err)
	}
	starts, err := adm.ListStartOffsets(ctx, topic)
	if err != nil {
		return fmt.Errorf("list start offsets of %s: %w", topic, err)
	}
	var bad error
	committed.Each(func(o kadm.OffsetResponse) {
		if o.Topic != topic || o.Err != nil {
			return
		}
		if s, ok := starts.Lookup(topic, o.Partition); ok && s.Err == nil && o.At < s.Offset {
			bad = errors.Join(bad, fmt.Errorf("%w: partition %d committed %d, log starts at %d; republish from the event store or rebuild",
				ErrOffsetBelowLogStart, o.Partition, o.At, s.Offset))
		}
	})
	return bad
}

// RunOnce polls one batch, applies it, parks what fails, and commits. An error means nothing of the
// batch was committed (it will be read again).
func (l *Loop) RunOnce(ctx context.Context) error {
	defer l.Client.AllowRebalance()
	fs := l.Client.PollRecords(ctx, 5000)
	if err := ctx.Err(); err != nil {
		return nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	var fetchErr error
	fs.EachError(func(t string, p int32, err error) {
		fetchErr = errors.Join(fetchErr, fmt.Errorf("fetch %s/%d: %w", t, p, err))
	})
	if fetchErr != nil {
		return fetchErr
	}
	records := fs.Records()
	if len(records) == 0 {
		return nil
	}
	var batch []Event
	from := map[string]*kgo.Record{} // order id -> its first record in the batch, for parking
	for _, r := range records {
		var env events.Envelope
		err := json.Unmarshal(r.Value, &env)
		var p events.Payload
		if err == nil {
			p, err = events.DecodeEnvelope(env)
		}
		order := string(r.Key)
		if err == nil && env.OrderID != order {
			err = fmt.Errorf("record key %q is not the envelope's order id %q", order, env.OrderID)
		}
		if err != nil || l.Parking.IsParked(order) {
			if err := l.Parking.Park(ctx, order, r, err); err != nil {
				return err
			}
			l.Metrics.Parked.Inc()
			continue
		}
		batch = append(batch, Event{Envelope: env, Payload: p})
		if from[order] == nil {
			from[order] = r
		}
	}
	res, err := Apply(ctx, l.Index, batch)
	if err != nil {
		return err
	}
	for order, why := range res.Failed {
		// Park every event of the failed order in this batch, in order; later ones wait behind them.
		for _, r := range records {
			if string(r.Key) == order {
				if err := l.Parking.Park(ctx, order, r, why); err != nil {
					return err
				}
				l.Metrics.Parked.Inc()
			}
		}
	}
	l.Metrics.Applied.Add(float64(res.Applied))
	l.Metrics.Duplicates.Add(float64(res.Duplicates))
	now := time.Now()
	for _, e := range batch {
		if res.Failed[e.Envelope.OrderID] == nil && !e.Envelope.RecordedAt.IsZero() {
			l.Metrics.Freshness.Observe(now.Sub(e.Envelope.RecordedAt).Seconds())
		}
	}
	if err := l.Client.CommitRecords(ctx, records...); err != nil {
		return fmt.Errorf("commit offsets: %w", err)
	}
	return nil
}

// Run loops until ctx ends; errors are logged and retried with backoff, except a deleted committed
// position, which stops the projector.
func (l *Loop) Run(ctx context.Context) error {
	backoff := 100 * time.Millisecond
	for ctx.Err() == nil {
		err := l.RunOnce(ctx)
		if err == nil {
			backoff = 100 * time.Millisecond
			continue
		}
		if errors.Is(err, ErrOffsetBelowLogStart) {
			return err
		}
		l.Log.Warn("batch failed; retrying", "error", err.Error(), "retry_in", backoff.String())
		select {
		case <-ctx.Done():
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 5*time.Second)
	}
	return nil
}

// WatchLag refreshes the per-partition lag gauge every interval until ctx ends.
func WatchLag(ctx context.Context, adm *kadm.Client, topic, group string, m *Metrics, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		if lags, err := adm.Lag(ctx, group); err == nil {
			if l, ok := lags[group]; ok && l.Error() == nil {
				for _, ml := range l.Lag.Sorted() {
					if ml.Topic == topic && ml.Lag >= 0 {
						m.Lag.WithLabelValues(strconv.Itoa(int(ml.Partition))).Set(float64(ml.Lag))
					}
				}
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// ErrNothingParked: the order has no parked events.
var ErrNothingParked = errors.New("the order has no parked events")

// Replay applies an order's parked events again, in order (after a fix: a new version that decodes
// them, or a corrected document), and unparks the order when all of them apply. It returns how many
// events it replayed; on failure the order stays parked.
func (l *Loop) Replay(ctx context.Context, order string) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	parked, ids, err := l.Parking.Parked(ctx, order)
	if err != nil {
		return 0, err
	}
	if len(parked) == 0 {
		return 0, ErrNothingParked
	}
	batch := make([]Event, 0, len(parked))
	for _, p := range parked {
		var env events.Envelope
		err := json.Unmarshal([]byte(p.Value), &env)
		var payload events.Payload
		if err == nil {
			payload, err = events.DecodeEnvelope(env)
		}
		if err != nil {
			return 0, fmt.Errorf("replay %s: partition %d offset %d still cannot be decoded: %w", order, p.Partition, p.Offset, err)
		}
		batch = append(batch, Event{Envelope: env, Payload: payload})
	}
	// In version order: a missing event republished later (ordersctl events republish) was parked
	// behind the gap it fills.
	slices.SortStableFunc(batch, func(a, b Event) int { return cmp.Compare(a.Envelope.Version, b.Envelope.Version) })
	res, err := Apply(ctx, l.Index, batch)
	if err != nil {
		return 0, err
	}
	if why := res.Failed[order]; why != nil {
		return 0, fmt.Errorf("replay %s: %w", order, why)
	}
	if err := l.Parking.unpark(ctx, order, ids); err != nil {
		return 0, err
	}
	l.Metrics.Applied.Add(float64(res.Applied))
	l.Metrics.Duplicates.Add(float64(res.Duplicates))
	return len(batch), nil
}
