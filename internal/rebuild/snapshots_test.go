package rebuild_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/orders-oss/orders/internal/eventstore"
	"github.com/orders-oss/orders/internal/order"
	"github.com/orders-oss/orders/internal/rebuild"
	"github.com/orders-oss/orders/pkg/events"
)

// snapStore adds snapshots to memStore, with the reads VerifySnapshots makes.
type snapStore struct {
	*memStore
	snaps []eventstore.Snapshot // in (stream, version) order
	reads int
}

func (s *snapStore) SnapshotPage(_ context.Context, afterStream string, afterVersion int64, limit int) ([]eventstore.Snapshot, error) {
	var out []eventstore.Snapshot
	for _, sn := range s.snaps {
		if (sn.StreamID > afterStream || sn.StreamID == afterStream && sn.Version > afterVersion) && len(out) < limit {
			out = append(out, sn)
		}
	}
	return out, nil
}

func (s *snapStore) Read(_ context.Context, id string, r eventstore.Range) ([]events.Envelope, error) {
	s.reads++
	var out []events.Envelope
	for _, e := range s.evs {
		if e.OrderID == id && e.Version > r.After && (r.To == 0 || e.Version <= r.To) {
			out = append(out, e)
		}
	}
	return out, nil
}

// snapshot is the fold of the order's first n events, as the command service would take it.
func (s *snapStore) snapshot(t *testing.T, id string, n int64, edit func(*order.State)) {
	t.Helper()
	var st order.State
	for _, e := range s.evs {
		if e.OrderID == id && e.Version <= n {
			p, err := events.DecodeEnvelope(e)
			if err != nil {
				t.Fatal(err)
			}
			st = order.Evolve(st, e, p)
		}
	}
	if edit != nil {
		edit(&st)
	}
	b, err := order.EncodeState(st)
	if err != nil {
		t.Fatal(err)
	}
	s.snaps = append(s.snaps, eventstore.Snapshot{StreamID: id, Version: n, FoldSchemaVersion: order.FoldSchemaVersion, State: b})
}

func TestVerifySnapshots(t *testing.T) {
	ctx := context.Background()
	s := &snapStore{memStore: &memStore{}}
	a, b, c := "01936f3e-0000-7000-8000-00000000000a", "01936f3e-0000-7000-8000-00000000000b", "01936f3e-0000-7000-8000-00000000000c"
	for _, id := range []string{a, b, c} {
		s.append(t, id, placed)
		for range 5 {
			s.append(t, id, events.ShippingAddressChanged{ShippingAddress: placed.ShippingAddress})
		}
	}
	s.snapshot(t, a, 2, nil)
	s.snapshot(t, a, 4, nil)
	s.snapshot(t, a, 6, nil)
	// Every snapshot equal to its fold: verified, each order's events read once per snapshot range.
	r, err := rebuild.VerifySnapshots(ctx, s, nil, nil)
	if err != nil || !r.OK() || r.Verified != 3 || r.Orders != 1 || len(r.Problems) != 0 {
		t.Fatalf("VerifySnapshots(good) = %+v, %v; want 3 verified", r, err)
	}
	// Now one of each problem.
	s.snapshot(t, b, 3, func(st *order.State) { st.Currency, st.Customer.Name = "GBP", events.Plain("Mallory") })
	s.snaps = append(s.snaps, eventstore.Snapshot{StreamID: b, Version: 4, FoldSchemaVersion: order.FoldSchemaVersion, State: json.RawMessage(`{"colour":"red"}`)})
	s.snaps = append(s.snaps, eventstore.Snapshot{StreamID: b, Version: 5, FoldSchemaVersion: order.FoldSchemaVersion + 1, State: json.RawMessage(`{}`)})
	s.snapshot(t, b, 6, nil)
	s.snaps = append(s.snaps, eventstore.Snapshot{StreamID: b, Version: 9, FoldSchemaVersion: order.FoldSchemaVersion, State: json.RawMessage(`{}`)})
	// c: an event a newer release wrote, before the snapshot.
	s.evs = append(s.evs, events.Envelope{Position: 99, OrderID: c, Version: 7, Type: events.TypeOrderShipped, SchemaVersion: 3, Data: json.RawMessage(`{}`)})
	s.snapshot(t, c, 6, nil)
	s.snaps = append(s.snaps, eventstore.Snapshot{StreamID: c, Version: 7, FoldSchemaVersion: order.FoldSchemaVersion, State: json.RawMessage(`{}`)})

	r, err = rebuild.VerifySnapshots(ctx, s, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	kinds := map[rebuild.SnapshotKind]int{}
	for _, p := range r.Problems {
		kinds[p.Kind]++
		if p.Kind == rebuild.SnapshotDiffers && (p.Version != 3 || !strings.Contains(string(p.Snapshot), "GBP") || strings.Contains(string(p.Fold), "GBP")) {
			t.Errorf("differs: %+v, want snapshot 3 of b side by side with the fold", p)
		}
		if strings.Contains(string(p.Snapshot)+string(p.Fold), "Mallory") {
			t.Errorf("a report shows personal data: %+v", p)
		}
	}
	want := map[rebuild.SnapshotKind]int{rebuild.SnapshotDiffers: 1, rebuild.SnapshotUndecodable: 1, rebuild.SnapshotOtherFold: 1,
		rebuild.SnapshotBeyondHistory: 1, rebuild.SnapshotEventsUnreadable: 1}
	for k, n := range want {
		if kinds[k] != n {
			t.Errorf("%d problems of kind %s, want %d (all: %+v)", kinds[k], k, n, r.Problems)
		}
	}
	if r.OK() || r.Failures != 4 || r.OtherFold != 1 || r.Verified != 5 || r.Snapshots != 10 || r.Orders != 3 {
		t.Errorf("report = %+v; want 4 failures, 1 of another fold, 5 verified of 10 snapshots of 3 orders", r)
	}
	// Only snapshots of another fold: listed, not a failure.
	s.snaps = []eventstore.Snapshot{{StreamID: a, Version: 2, FoldSchemaVersion: order.FoldSchemaVersion + 1, State: json.RawMessage(`{}`)}}
	if r, err := rebuild.VerifySnapshots(ctx, s, nil, nil); err != nil || !r.OK() || r.OtherFold != 1 {
		t.Errorf("VerifySnapshots(other fold only) = %+v, %v; want OK with 1 of another fold", r, err)
	}
}
