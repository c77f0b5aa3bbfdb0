package command

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/orders-oss/orders/internal/eventstore"
	"github.com/orders-oss/orders/internal/order"
	"github.com/orders-oss/orders/pkg/events"
)

// SnapshotSaver stores snapshots (an *eventstore.Store).
type SnapshotSaver interface {
	SaveSnapshot(ctx context.Context, snap eventstore.Snapshot) error
}

// Snapshots is the command service's use of snapshots: which one a load may start from, and taking new
// ones. A snapshot is taken when a command's events cross a multiple of Every, or when a load of the
// current state had to fold 2×Every events or more past its snapshot (an order older than snapshots,
// or one whose snapshot was dropped); a load that had to ignore a snapshot takes a fresh one in its
// place. Taking is off the request path: the state goes into a bounded queue that Run writes out
// after the command's transaction, and a full queue drops it (a later command takes the next one).
type Snapshots struct {
	every int64
	store SnapshotSaver
	log   *slog.Logger
	queue chan order.State
	keys  Sealers

	fallbacks, taken, dropped, failed prometheus.Counter
}

// Sealers give a customer's data key to seal with (a *pii.Keyring).
type Sealers interface {
	Sealer(ctx context.Context, customerID string) (events.Sealer, error)
}

// SealWith makes the snapshots of orders whose events hold personal data in plain text (written before
// personal data was sealed) hold it sealed with the customer's key; without it, such orders get no
// snapshot. A snapshot never holds plain text.
func (s *Snapshots) SealWith(k Sealers) *Snapshots {
	s.keys = k
	return s
}

// DefaultSnapshotQueue is how many snapshots may wait to be written before new ones are dropped.
const DefaultSnapshotQueue = 256

// NewSnapshots takes a snapshot every `every` events (at least 1) into store; queue bounds the
// snapshots waiting to be written (DefaultSnapshotQueue when <= 0). Register Collectors, and run Run.
func NewSnapshots(store SnapshotSaver, every, queue int, log *slog.Logger) *Snapshots {
	if queue <= 0 {
		queue = DefaultSnapshotQueue
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Snapshots{every: int64(max(every, 1)), store: store, log: log, queue: make(chan order.State, queue),
		fallbacks: prometheus.NewCounter(prometheus.CounterOpts{Name: "snapshot_fallbacks_total",
			Help: "Loads that ignored a snapshot (another fold schema version, or a state that did not decode) and folded the order from its events."}),
		taken: prometheus.NewCounter(prometheus.CounterOpts{Name: "snapshots_taken_total", Help: "Snapshots written."}),
		dropped: prometheus.NewCounter(prometheus.CounterOpts{Name: "snapshots_dropped_total",
			Help: "Snapshots not taken because the queue was full."}),
		failed: prometheus.NewCounter(prometheus.CounterOpts{Name: "snapshot_writes_failed_total", Help: "Snapshots whose write failed."}),
	}
}

// Collectors are the snapshot metrics, to register on the service's registry.
func (s *Snapshots) Collectors() []prometheus.Collector {
	return []prometheus.Collector{s.fallbacks, s.taken, s.dropped, s.failed}
}

// Run writes the queued snapshots until ctx ends, then returns; snapshots still queued are dropped (a
// snapshot is a cache: the next command takes another).
func (s *Snapshots) Run(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case st := <-s.queue:
			s.write(ctx, st)
		}
	}
}

func (s *Snapshots) write(ctx context.Context, st order.State) {
	// A write that has begun is finished at shutdown, briefly.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	err := func() error {
		if st.HasPlain() {
			if s.keys == nil {
				return errors.New("the order holds personal data in plain text, and no key to seal it with")
			}
			sealer, err := s.keys.Sealer(ctx, st.Customer.ID)
			if err != nil {
				return err
			}
			if st, err = st.Seal(sealer); err != nil {
				return err
			}
		}
		state, err := order.EncodeState(st)
		if err != nil {
			return err
		}
		return s.store.SaveSnapshot(ctx, eventstore.Snapshot{StreamID: st.ID, Version: st.Version,
			FoldSchemaVersion: order.FoldSchemaVersion, State: state})
	}()
	if err != nil {
		s.failed.Inc()
		s.log.Warn("snapshot not taken", "order", st.ID, "version", st.Version, "error", err.Error())
		return
	}
	s.taken.Inc()
}

// offer queues a snapshot of st, or drops it when the queue is full; it never waits.
func (s *Snapshots) offer(st order.State) {
	select {
	case s.queue <- st:
	default:
		s.dropped.Inc()
	}
}

// afterCommand offers a snapshot of the state a command left (at after.Version, from prev, loaded from
// a snapshot at base) when its events crossed a multiple of every, or the load was far behind.
func (s *Snapshots) afterCommand(after order.State, prev, base int64) {
	if s == nil || !after.Exists() {
		return
	}
	if after.Version/s.every > prev/s.every || after.Version-base >= 2*s.every {
		s.offer(after)
	}
}

// afterLoad offers a snapshot of an order's current state when its load was far behind.
func (s *Snapshots) afterLoad(st order.State, base int64) {
	if s != nil && st.Exists() && st.Version-base >= 2*s.every {
		s.offer(st)
	}
}

// use returns the state a snapshot holds, or false when a load must not start from it: it was taken by
// another fold schema version, or it does not decode to the order and version of its row. Those are
// counted (snapshot_fallbacks_total) and logged; the caller folds from the events and replaces it.
func (s *Snapshots) use(snap *eventstore.Snapshot) (order.State, bool) {
	var why string
	st, err := order.DecodeState(snap.State)
	switch {
	case snap.FoldSchemaVersion != order.FoldSchemaVersion:
		why = fmt.Sprintf("taken by fold schema version %d; this code folds version %d", snap.FoldSchemaVersion, order.FoldSchemaVersion)
	case err != nil:
		why = err.Error()
	case st.ID != snap.StreamID || st.Version != snap.Version:
		why = fmt.Sprintf("holds order %q at version %d", st.ID, st.Version)
	default:
		return st, true
	}
	s.fallbacks.Inc()
	s.log.Warn("snapshot ignored; folding the order from its events and replacing it",
		"order", snap.StreamID, "version", snap.Version, "reason", why)
	return order.State{}, false
}
