package searchindex_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/orders-oss/orders/internal/order"
	"github.com/orders-oss/orders/internal/projection"
	"github.com/orders-oss/orders/internal/projection/projectiontest"
	"github.com/orders-oss/orders/internal/searchindex"
	"github.com/orders-oss/orders/pkg/api"
	"github.com/orders-oss/orders/pkg/events"
)

// fakeDocs is an index in memory: Get returns what Write stored, Write refuses versions at or below
// the stored one (as external versioning does).
type fakeDocs struct {
	docs     map[string]api.Order
	expunged int
}

func (f *fakeDocs) Get(_ context.Context, ids []string) (map[string]api.Order, error) {
	out := map[string]api.Order{}
	for _, id := range ids {
		if d, ok := f.docs[id]; ok {
			out[id] = d
		}
	}
	return out, nil
}

func (f *fakeDocs) ExpungeDeleted(context.Context) error {
	f.expunged++
	return nil
}

func (f *fakeDocs) Write(_ context.Context, docs []api.Order, _ bool) (searchindex.WriteResult, error) {
	r := searchindex.WriteResult{Stale: map[string]bool{}, Failures: map[string]string{}}
	for _, d := range docs {
		if cur, ok := f.docs[d.ID]; ok && cur.Version >= d.Version {
			r.Stale[d.ID] = true
			continue
		}
		f.docs[d.ID] = d
		r.Written++
	}
	return r, nil
}

// The search projector's gap must be a *projection.GapError, so that PROJECTOR_GAP_GRACE (which
// covers the moment after a rebuild's alias swap) holds it back instead of parking the order at once.
func TestGapGraceHoldsASearchProjectorGap(t *testing.T) {
	const topic = "orders.events"
	id := uuid.NewString()
	// The index holds the order at version 1; the topic brings version 3 (version 2 is missing).
	brokers := projectiontest.Cluster(t, topic, 1, projectiontest.Record(t, topic, id, 3, events.OrderDelivered{}))
	for _, tt := range []struct {
		grace      time.Duration
		wantParked bool
	}{{time.Hour, false}, {0, true}} {
		v, err := order.State{ID: id, Version: 1, Status: order.StatusPlaced}.View(nil)
		if err != nil {
			t.Fatal(err)
		}
		docs := &fakeDocs{docs: map[string]api.Order{id: v}}
		store := &projectiontest.MemStore{}
		parking, err := projection.NewParkedSet(context.Background(), store)
		if err != nil {
			t.Fatal(err)
		}
		group := "g-" + tt.grace.String()
		cl, err := kgo.NewClient(projection.ConsumerOptions(brokers, topic, group)...)
		if err != nil {
			t.Fatal(err)
		}
		loop := &projection.Loop{Client: cl, Handler: searchindex.Handler{Index: docs}, Parking: parking, Topic: topic, Group: group,
			Log: slog.New(slog.NewTextHandler(io.Discard, nil)), Metrics: projection.NewMetrics(), GapGrace: tt.grace}
		var runErr error
		for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline) && runErr == nil && parking.Count() == 0; {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			runErr = loop.RunOnce(ctx)
			cancel()
		}
		cl.Close()
		if tt.wantParked {
			if runErr != nil || len(store.Records(id)) != 1 {
				t.Errorf("GapGrace 0: RunOnce = %v, parked %+v; want the order parked at once", runErr, store.Records(id))
			}
			continue
		}
		if !errors.Is(runErr, projection.ErrGapWait) {
			t.Errorf("GapGrace %s: RunOnce = %v, want ErrGapWait (the gap held back, not parked)", tt.grace, runErr)
		}
		if parking.Count() != 0 {
			t.Errorf("GapGrace %s: parked %+v, want nothing parked within the grace", tt.grace, store.Records(id))
		}
		if docs.docs[id].Version != 1 {
			t.Errorf("GapGrace %s: document at version %d, want 1 (a gap is never applied)", tt.grace, docs.docs[id].Version)
		}
	}
}

// An erasing batch asks for an expunge (OnErase) and does none itself; without OnErase it expunges at
// once; other batches neither.
func TestErasingBatchesExpunge(t *testing.T) {
	ctx := context.Background()
	id := uuid.NewString()
	erase := projection.Event{Envelope: events.Envelope{OrderID: id, Version: 2}, Payload: events.PersonalDataErased{ErasureID: "e"}}
	placed := projection.Event{Envelope: events.Envelope{OrderID: id, Version: 1}, Payload: projectiontest.Placed("c")}
	for _, tt := range []struct {
		batch             []projection.Event
		onErase           bool
		requests, expunge int
	}{
		{[]projection.Event{placed}, true, 0, 0},
		{[]projection.Event{placed, erase}, true, 1, 0},
		{[]projection.Event{placed, erase}, false, 0, 1},
	} {
		docs := &fakeDocs{docs: map[string]api.Order{}}
		requests := 0
		h := searchindex.Handler{Index: docs}
		if tt.onErase {
			h.OnErase = func() { requests++ }
		}
		if _, err := h.Apply(ctx, tt.batch, nil); err != nil {
			t.Fatal(err)
		}
		if requests != tt.requests || docs.expunged != tt.expunge {
			t.Errorf("batch of %d events (OnErase %v): %d requests, %d expunges; want %d, %d", len(tt.batch), tt.onErase, requests, docs.expunged, tt.requests, tt.expunge)
		}
	}
}

// The Expunger expunges at each of its delays after a request, once per round however many requests.
func TestExpunger(t *testing.T) {
	docs := &fakeDocs{}
	e := searchindex.NewExpunger(docs, nil)
	e.After = []time.Duration{10 * time.Millisecond, 30 * time.Millisecond}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); e.Run(ctx) }()
	e.Request()
	e.Request()
	time.Sleep(200 * time.Millisecond)
	cancel()
	<-done
	if docs.expunged < 2 || docs.expunged > 4 {
		t.Errorf("%d expunges after two requests, want the 2 of a round (4 at most if the second request made a second round)", docs.expunged)
	}
}
