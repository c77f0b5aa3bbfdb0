package rebuild_test

import (
	"context"
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/orders-oss/orders/internal/order"
	"github.com/orders-oss/orders/internal/pii/piitest"
	"github.com/orders-oss/orders/internal/rebuild"
	"github.com/orders-oss/orders/pkg/api"
	"github.com/orders-oss/orders/pkg/events"
)

// memStore is an event store in memory: ReadAll pages by position as the real one does. Its events
// hold their personal data sealed with keys.
type memStore struct {
	evs  []events.Envelope
	keys *piitest.Keys
}

func (m *memStore) LastPosition(context.Context) (int64, error) {
	if len(m.evs) == 0 {
		return 0, nil
	}
	return m.evs[len(m.evs)-1].Position, nil
}

func (m *memStore) ReadAll(_ context.Context, after int64, limit int) ([]events.Envelope, error) {
	var out []events.Envelope
	for _, e := range m.evs {
		if e.Position > after && len(out) < limit {
			out = append(out, e)
		}
	}
	return out, nil
}

// append stores the order's next event.
func (m *memStore) append(t *testing.T, id string, p events.Payload) {
	t.Helper()
	if m.keys == nil {
		m.keys = piitest.New()
	}
	key, err := m.keys.Sealer(context.Background(), "c")
	if err != nil {
		t.Fatal(err)
	}
	if p, err = events.SealAt(p, 0, id, key); err != nil {
		t.Fatal(err)
	}
	typ, sv, data, err := events.Encode(p)
	if err != nil {
		t.Fatal(err)
	}
	var version int64 = 1
	for _, e := range m.evs {
		if e.OrderID == id {
			version = e.Version + 1
		}
	}
	at := time.Date(2026, 11, 26, 12, 0, len(m.evs), 0, time.UTC)
	m.evs = append(m.evs, events.Envelope{Position: int64(len(m.evs) + 1), OrderID: id, Version: version, Type: typ, SchemaVersion: sv,
		Data: data, OccurredAt: at, RecordedAt: at})
}

// fold is the order as its first n events (all when n is 0) make it.
func (m *memStore) fold(t *testing.T, id string, n int) api.Order {
	t.Helper()
	var st order.State
	for _, e := range m.evs {
		if e.OrderID != id || (n > 0 && e.Version > int64(n)) {
			continue
		}
		p, err := events.DecodeEnvelope(e)
		if err != nil {
			t.Fatal(err)
		}
		st = order.Evolve(st, e, p)
	}
	v, err := st.View(m.keys)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// memModel is a read model in memory.
type memModel map[string]api.Order

func (m memModel) Get(_ context.Context, ids []string) (map[string]api.Order, error) {
	out := map[string]api.Order{}
	for _, id := range ids {
		if o, ok := m[id]; ok {
			out[id] = o
		}
	}
	return out, nil
}

func (m memModel) EachID(_ context.Context, fn func(string)) error {
	for id := range m {
		fn(id)
	}
	return nil
}

// phases is a rebuild.Progress that keeps the phases and the last count of each.
type phases struct {
	names []rebuild.Phase
	total map[rebuild.Phase]int64
	done  map[rebuild.Phase]int64
}

func (p *phases) Phase(ph rebuild.Phase, total int64) {
	if p.total == nil {
		p.total, p.done = map[rebuild.Phase]int64{}, map[rebuild.Phase]int64{}
	}
	p.names = append(p.names, ph)
	p.total[ph] = total
}
func (p *phases) Advance(n int64)               { p.done[p.names[len(p.names)-1]] = n }
func (p *phases) Message(rebuild.Level, string) {}

var (
	placed = events.OrderPlaced{Customer: events.Customer{ID: "c", Name: events.Plain("Ada"), Email: events.Plain("ada@example.com")},
		ShippingAddress: events.Plain(events.Address{Name: "Ada", Line1: "1", City: "London", PostalCode: "N1", Country: "GB"}), Currency: "EUR",
		Items: []events.LineItem{{SKU: "A", Name: "a", Quantity: 1, UnitPrice: 10}}}
	paid = events.PaymentConfirmed{Amount: 10, Currency: "EUR", Reference: "p"}
)

func TestVerifyFindsEveryDifference(t *testing.T) {
	const (
		same    = "00000000-0000-4000-8000-000000000001"
		missing = "00000000-0000-4000-8000-000000000002"
		behind  = "00000000-0000-4000-8000-000000000003"
		changed = "00000000-0000-4000-8000-000000000004"
		extra   = "00000000-0000-4000-8000-000000000009"
	)
	store := &memStore{}
	for _, id := range []string{same, missing, behind, changed} {
		store.append(t, id, placed)
		store.append(t, id, paid)
	}
	model := memModel{same: store.fold(t, same, 0), behind: store.fold(t, behind, 1), changed: store.fold(t, changed, 0), extra: {ID: extra, Version: 1}}
	c := model[changed]
	mallory := "Mallory"
	c.Customer.Name = &mallory
	model[changed] = c

	p := &phases{}
	r, err := rebuild.Verify(context.Background(), store, model, store.keys, p)
	if err != nil {
		t.Fatal(err)
	}
	if r.Events != 8 || r.Orders != 4 || r.OK() {
		t.Errorf("Verify = %d events, %d orders, OK %v; want 8, 4, false", r.Events, r.Orders, r.OK())
	}
	var got []string
	for _, d := range r.Differences {
		got = append(got, string(d.Kind)+" "+d.OrderID)
	}
	want := []string{"missing " + missing, "version " + behind, "fields " + changed, "extra " + extra}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("differences = %v, want %v (the store's orders by id, then the extra ones)", got, want)
	}
	if r.Missing != 1 || r.Version != 1 || r.Fields != 1 || r.Extra != 1 {
		t.Errorf("counts = %d missing, %d version, %d fields, %d extra; want 1 each", r.Missing, r.Version, r.Fields, r.Extra)
	}
	if d := r.Differences[0]; d.StoreVersion != 2 {
		t.Errorf("missing: store version %d, want 2", d.StoreVersion)
	}
	if d := r.Differences[1]; d.StoreVersion != 2 || d.ModelVersion != 1 {
		t.Errorf("version: store %d, model %d; want 2, 1", d.StoreVersion, d.ModelVersion)
	}
	if d := r.Differences[2]; d.Model == nil || d.Store == nil || *d.Model.Customer.Name != "Mallory" || *d.Store.Customer.Name != "Ada" {
		t.Errorf("fields: both shapes wanted, got model %+v, store %+v", d.Model, d.Store)
	}
	// The report is what --output json and the console show.
	b, err := json.Marshal(r)
	if err != nil || !strings.Contains(string(b), `"kind":"fields"`) || !strings.Contains(string(b), `"read_model":{`) {
		t.Errorf("report JSON = %s (%v)", b, err)
	}
	if !reflect.DeepEqual(p.names, []rebuild.Phase{rebuild.PhaseFold, rebuild.PhaseCompare}) ||
		p.total[rebuild.PhaseFold] != 8 || p.done[rebuild.PhaseFold] != 8 || p.total[rebuild.PhaseCompare] != 4 || p.done[rebuild.PhaseCompare] != 4 {
		t.Errorf("progress = %+v", p)
	}
}

func TestVerifyCleanModelAndUndecodableEvent(t *testing.T) {
	store := &memStore{}
	id := "00000000-0000-4000-8000-000000000001"
	store.append(t, id, placed)
	r, err := rebuild.Verify(context.Background(), store, memModel{id: store.fold(t, id, 0)}, store.keys, nil)
	if err != nil || !r.OK() || r.Differences == nil {
		t.Errorf("Verify of a matching model = %+v, %v; want OK with an empty (not null) list", r, err)
	}
	store.evs = append(store.evs, events.Envelope{Position: 2, OrderID: id, Version: 2, Type: "OrderTeleported", SchemaVersion: 1, Data: json.RawMessage(`{}`)})
	if _, err := rebuild.Verify(context.Background(), store, memModel{}, store.keys, nil); err == nil || !strings.Contains(err.Error(), "event 2 of order "+id) {
		t.Errorf("Verify with an undecodable event = %v, want an error naming it", err)
	}
}
