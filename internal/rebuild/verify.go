package rebuild

import (
	"context"
	"fmt"
	"reflect"
	"sort"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/orders-oss/orders/internal/eventstore"
	"github.com/orders-oss/orders/internal/order"
	"github.com/orders-oss/orders/internal/projection"
	"github.com/orders-oss/orders/internal/readmodel"
	"github.com/orders-oss/orders/internal/searchindex"
	"github.com/orders-oss/orders/pkg/api"
	"github.com/orders-oss/orders/pkg/events"
)

// Source is what verify and backfill read of the event store (an *eventstore.Store).
type Source interface {
	LastPosition(ctx context.Context) (int64, error)
	// ReadAll returns up to limit events of every order above a position, in position order.
	ReadAll(ctx context.Context, afterPosition int64, limit int) ([]events.Envelope, error)
}

// Model is a read model as verify compares it with the event store.
type Model interface {
	// Get returns the orders of ids the model holds (the others are absent from the map).
	Get(ctx context.Context, ids []string) (map[string]api.Order, error)
	// EachID calls fn with the id of every order the model holds.
	EachID(ctx context.Context, fn func(id string)) error
}

// OpenModel returns a read model to verify: orders, the live generation of the Postgres tables;
// search, the index behind alias.
func OpenModel(ctx context.Context, c Clients, target Target, alias string) (Model, error) {
	switch target {
	case Orders:
		if c.Pool == nil {
			return nil, fmt.Errorf("verify orders: no Postgres pool")
		}
		gen, err := readmodel.Live(ctx, c.Pool)
		if err != nil {
			return nil, err
		}
		return tableModel{pool: c.Pool, gen: gen}, nil
	case Search:
		if c.OpenSearch == nil || alias == "" {
			return nil, fmt.Errorf("verify search: no OpenSearch client or alias")
		}
		return searchindex.New(c.OpenSearch, alias), nil
	}
	_, err := ParseTarget(string(target))
	return nil, err
}

// viewsOf returns the API shape of the states of ids, personal data opened with keys (one read of
// the keys for them all).
func viewsOf(ctx context.Context, keys projection.Keys, states map[string]order.State, ids []string) (map[string]api.Order, error) {
	f := projection.Fold{Result: projection.Result{Failed: map[string]error{}}}
	for _, id := range ids {
		f.Changes = append(f.Changes, projection.Change{State: states[id]})
	}
	docs, err := f.Views(ctx, keys)
	if err != nil {
		return nil, err
	}
	for id, why := range f.Result.Failed {
		return nil, fmt.Errorf("order %s: %w", id, why)
	}
	out := make(map[string]api.Order, len(docs))
	for _, d := range docs {
		out[d.ID] = d
	}
	return out, nil
}

// tableModel is the live generation of the Postgres read model.
type tableModel struct {
	pool *pgxpool.Pool
	gen  int
}

func (m tableModel) Get(ctx context.Context, ids []string) (map[string]api.Order, error) {
	return readmodel.Current(ctx, m.pool, m.gen, ids)
}

func (m tableModel) EachID(ctx context.Context, fn func(id string)) error {
	return readmodel.EachID(ctx, m.pool, m.gen, fn)
}

// Kind is how a read model's order differs from the event store's.
type Kind string

const (
	// Missing: the event store has the order, the read model does not.
	Missing Kind = "missing"
	// Extra: the read model has an order the event store never had.
	Extra Kind = "extra"
	// Version: the read model holds the order at another version.
	Version Kind = "version"
	// Fields: same version, other content.
	Fields Kind = "fields"
)

// Difference is one order on which a read model and the event store disagree.
type Difference struct {
	Kind    Kind   `json:"kind"`
	OrderID string `json:"order_id"`
	// StoreVersion is the order's version folded from the event store (0 for Extra).
	StoreVersion int64 `json:"event_store_version,omitempty"`
	// ModelVersion is the version the read model holds (0 for Missing).
	ModelVersion int64 `json:"read_model_version,omitempty"`
	// For Fields, both shapes of the order, to compare side by side.
	Store *api.Order `json:"event_store,omitempty"`
	Model *api.Order `json:"read_model,omitempty"`
}

// Report is the outcome of a verify.
type Report struct {
	Target Target `json:"target,omitempty"`
	// Events and Orders are what was folded from the event store.
	Events int64 `json:"events"`
	Orders int   `json:"orders"`
	// Counts per Kind.
	Missing int `json:"missing"`
	Extra   int `json:"extra"`
	Version int `json:"version"`
	Fields  int `json:"fields"`
	// Differences in the order found: the store's orders by id, then the model's extra orders.
	Differences []Difference `json:"differences"`
}

// OK reports whether the read model matches the event store.
func (r *Report) OK() bool { return len(r.Differences) == 0 }

func (r *Report) add(d Difference) {
	switch d.Kind {
	case Missing:
		r.Missing++
	case Extra:
		r.Extra++
	case Version:
		r.Version++
	case Fields:
		r.Fields++
	}
	r.Differences = append(r.Differences, d)
}

// VerifyTarget verifies a read model (orders: the live table generation; search: the index behind
// alias) against the event store in c.Pool.
func VerifyTarget(ctx context.Context, c Clients, target Target, alias string, p Progress) (Report, error) {
	if c.Pool == nil {
		return Report{Target: target}, fmt.Errorf("verify %s: no Postgres pool (the event store)", target)
	}
	model, err := OpenModel(ctx, c, target, alias)
	if err != nil {
		return Report{Target: target}, err
	}
	r, err := Verify(ctx, eventstore.New(c.Pool), model, c.Keys, p)
	r.Target = target
	return r, err
}

// Verify folds every order from the event store with the domain's own evolve and compares it with the
// read model: each order that is missing, extra, at another version or with other fields is a
// Difference. Personal data is compared opened with keys (the read models hold it in plain text, or
// null once erased). An error means the comparison could not be made, not that the model differs.
func Verify(ctx context.Context, src Source, model Model, keys projection.Keys, p Progress) (Report, error) {
	p = orDiscard(p)
	r := Report{Differences: []Difference{}}

	// Fold the whole store, in position order (version order per order).
	states := map[string]order.State{}
	total, err := src.LastPosition(ctx)
	if err != nil {
		return r, err
	}
	p.Phase(PhaseFold, total)
	var after int64
	for {
		evs, err := src.ReadAll(ctx, after, 5000)
		if err != nil {
			return r, err
		}
		for _, e := range evs {
			payload, err := events.DecodeEnvelope(e)
			if err != nil {
				return r, fmt.Errorf("event %d of order %s: %w", e.Position, e.OrderID, err)
			}
			states[e.OrderID] = order.Evolve(states[e.OrderID], e, payload)
			after = e.Position
		}
		r.Events += int64(len(evs))
		p.Advance(r.Events)
		if len(evs) < 5000 {
			break
		}
	}
	r.Orders = len(states)

	ids := make([]string, 0, len(states))
	for id := range states {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	p.Phase(PhaseCompare, int64(len(ids)))
	for i := 0; i < len(ids); i += 1000 {
		chunk := ids[i:min(i+1000, len(ids))]
		docs, err := model.Get(ctx, chunk)
		if err != nil {
			return r, err
		}
		views, err := viewsOf(ctx, keys, states, chunk)
		if err != nil {
			return r, err
		}
		for _, id := range chunk {
			want := views[id]
			got, ok := docs[id]
			switch {
			case !ok:
				r.add(Difference{Kind: Missing, OrderID: id, StoreVersion: want.Version})
			case got.Version != want.Version:
				r.add(Difference{Kind: Version, OrderID: id, StoreVersion: want.Version, ModelVersion: got.Version})
			case !reflect.DeepEqual(order.FromView(got), order.FromView(want)):
				r.add(Difference{Kind: Fields, OrderID: id, StoreVersion: want.Version, ModelVersion: got.Version, Store: &want, Model: &got})
			}
		}
		p.Advance(int64(i + len(chunk)))
	}
	err = model.EachID(ctx, func(id string) {
		if _, ok := states[id]; !ok {
			r.add(Difference{Kind: Extra, OrderID: id})
		}
	})
	return r, err
}
