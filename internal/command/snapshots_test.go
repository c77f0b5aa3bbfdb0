package command

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/orders-oss/orders/internal/eventstore"
	"github.com/orders-oss/orders/internal/order"
	"github.com/orders-oss/orders/internal/pii/piitest"
	"github.com/orders-oss/orders/pkg/events"
)

// blockingSaver records snapshots; while gate is open it holds every save until released.
type blockingSaver struct {
	mu    sync.Mutex
	saved []eventstore.Snapshot
	gate  chan struct{}
}

func (b *blockingSaver) SaveSnapshot(ctx context.Context, snap eventstore.Snapshot) error {
	if b.gate != nil {
		select {
		case <-b.gate:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.saved = append(b.saved, snap)
	return nil
}

func (b *blockingSaver) versions() []int64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []int64
	for _, s := range b.saved {
		out = append(out, s.Version)
	}
	return out
}

func count(t *testing.T, c prometheus.Counter) float64 {
	t.Helper()
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}

func state(version int64) order.State {
	return order.State{ID: "01936f3e-0000-7000-8000-000000000001", Version: version, Status: order.StatusPlaced}
}

func TestSnapshotsAreDueAtMultiplesAndWhenFarBehind(t *testing.T) {
	s := NewSnapshots(&blockingSaver{}, 100, 1000, nil)
	tests := []struct {
		after, prev, base int64
		due               bool
	}{
		{99, 98, 0, false},
		{100, 99, 0, true}, // crosses 100
		{101, 100, 100, false},
		{250, 249, 200, false},
		{300, 299, 200, true}, // crosses 300
		{203, 199, 100, true}, // several events that cross 200
		{1000, 1000, 0, true}, // a load 1,000 events past its snapshot, taken by any command on it
		{10150, 10149, 9900, true},
		{10150, 10149, 10000, false},
	}
	for _, tt := range tests {
		before := len(s.queue)
		s.afterCommand(state(tt.after), tt.prev, tt.base)
		if got := len(s.queue) > before; got != tt.due {
			t.Errorf("afterCommand(version %d from %d, snapshot at %d) offered %v, want %v", tt.after, tt.prev, tt.base, got, tt.due)
		}
	}
	for _, tt := range []struct {
		version, base int64
		due           bool
	}{{150, 0, false}, {199, 0, false}, {200, 0, true}, {10000, 9900, false}, {10000, 9800, true}} {
		before := len(s.queue)
		s.afterLoad(state(tt.version), tt.base)
		if got := len(s.queue) > before; got != tt.due {
			t.Errorf("afterLoad(version %d, snapshot at %d) offered %v, want %v", tt.version, tt.base, got, tt.due)
		}
	}
	var none *Snapshots // snapshots off
	none.afterCommand(state(100), 99, 0)
	none.afterLoad(state(500), 0)
}

func TestSnapshotsNeverWaitAndDropWhenBusy(t *testing.T) {
	saver := &blockingSaver{gate: make(chan struct{})}
	s := NewSnapshots(saver, 1, 2, nil)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); s.Run(ctx) }()
	// The writer holds the first snapshot (the database is slow); two more fill the queue; the rest
	// are dropped at once, and nobody waits.
	start := time.Now()
	for v := int64(1); v <= 10; v++ {
		s.afterCommand(state(v), v-1, v-1)
		if v == 1 {
			for len(s.queue) != 0 { // the writer took it
				time.Sleep(time.Millisecond)
			}
		}
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("offering 10 snapshots to a blocked writer took %s", d)
	}
	if got := count(t, s.dropped); got != 7 {
		t.Errorf("snapshots_dropped_total = %v, want 7 (1 being written, 2 queued)", got)
	}
	close(saver.gate)
	for deadline := time.Now().Add(5 * time.Second); count(t, s.taken) < 3 && time.Now().Before(deadline); {
		time.Sleep(time.Millisecond)
	}
	if got := saver.versions(); len(got) != 3 || got[0] != 1 || got[1] != 2 || got[2] != 3 {
		t.Errorf("saved versions %v, want [1 2 3]", got)
	}
	cancel()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return after its context ended")
	}
	if saver.saved[0].FoldSchemaVersion != order.FoldSchemaVersion || !json.Valid(saver.saved[0].State) {
		t.Errorf("saved %+v, want the fold schema version and the encoded state", saver.saved[0])
	}
}

func TestUnusableSnapshotsAreCountedAndLogged(t *testing.T) {
	var logs bytes.Buffer
	s := NewSnapshots(&blockingSaver{}, 100, 0, slog.New(slog.NewTextHandler(&logs, nil)))
	good, _ := order.EncodeState(state(200))
	id := state(200).ID
	tests := []struct {
		name string
		snap eventstore.Snapshot
		ok   bool
	}{
		{"usable", eventstore.Snapshot{StreamID: id, Version: 200, FoldSchemaVersion: order.FoldSchemaVersion, State: good}, true},
		{"another fold schema version", eventstore.Snapshot{StreamID: id, Version: 200, FoldSchemaVersion: order.FoldSchemaVersion + 1, State: good}, false},
		{"does not decode", eventstore.Snapshot{StreamID: id, Version: 200, FoldSchemaVersion: order.FoldSchemaVersion, State: json.RawMessage(`{"colour":"red"}`)}, false},
		{"another version than its row", eventstore.Snapshot{StreamID: id, Version: 300, FoldSchemaVersion: order.FoldSchemaVersion, State: good}, false},
		{"another order than its row", eventstore.Snapshot{StreamID: "01936f3e-0000-7000-8000-000000000002", Version: 200, FoldSchemaVersion: order.FoldSchemaVersion, State: good}, false},
	}
	for i, tt := range tests {
		st, ok := s.use(&tt.snap)
		if ok != tt.ok || ok && st.Version != 200 {
			t.Errorf("use(%s) = %+v, %v; want %v", tt.name, st, ok, tt.ok)
		}
		if got := count(t, s.fallbacks); got != float64(i) {
			t.Errorf("after %s: snapshot_fallbacks_total = %v, want %d", tt.name, got, i)
		}
	}
	if n := strings.Count(logs.String(), "snapshot ignored"); n != 4 {
		t.Errorf("%d log lines about ignored snapshots, want 4:\n%s", n, logs.String())
	}
}

// A snapshot never holds personal data in plain text: a state folded from events that hold it so (an
// older release's) is sealed with the customer's key before it is written, and not written at all
// without keys.
func TestSnapshotsSealPlainPersonalData(t *testing.T) {
	plain := state(4)
	plain.Customer = events.Customer{ID: "cus_1", Name: events.Plain("Ada Lovelace"), Email: events.Plain("ada@example.com")}
	plain.ShippingAddress = events.Plain(events.Address{Name: "Ada", Line1: "12 Analytical St", City: "London", PostalCode: "N1", Country: "GB"})

	saver := &blockingSaver{}
	keys := piitest.New()
	s := NewSnapshots(saver, 1, 10, nil).SealWith(keys)
	s.write(context.Background(), plain)
	if len(saver.saved) != 1 {
		t.Fatalf("%d snapshots saved, want 1", len(saver.saved))
	}
	if raw := string(saver.saved[0].State); strings.Contains(raw, "Ada") || strings.Contains(raw, "Analytical") {
		t.Errorf("the snapshot holds plain text: %s", raw)
	}
	st, err := order.DecodeState(saver.saved[0].State)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := plain.View(nil)
	if got, err := st.View(keys); err != nil || !reflect.DeepEqual(got, want) {
		t.Errorf("the snapshot opens to %+v, %v; want %+v", got, err, want)
	}

	unsealed := &blockingSaver{}
	s = NewSnapshots(unsealed, 1, 10, nil)
	s.write(context.Background(), plain)
	if len(unsealed.saved) != 0 || count(t, s.failed) != 1 {
		t.Errorf("without keys: %d snapshots saved, %v failures; want none saved", len(unsealed.saved), count(t, s.failed))
	}
}
