package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"reflect"
	"sort"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/opensearch-project/opensearch-go/v2"

	"github.com/orders-oss/orders/internal/envconfig"
	"github.com/orders-oss/orders/internal/eventstore"
	"github.com/orders-oss/orders/internal/order"
	"github.com/orders-oss/orders/internal/readmodel"
	"github.com/orders-oss/orders/internal/searchindex"
	"github.com/orders-oss/orders/pkg/api"
	"github.com/orders-oss/orders/pkg/events"
)

// errDifferences: verify found differences (exit code 1, after printing them).
var errDifferences = errors.New("the read model differs from the event store")

// verify folds every order from the event store and compares it with the read model.
func verify(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("ordersctl verify", flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: ordersctl verify orders|search [--max-report N]\n\nFolds every order from the event store and compares it with a read model: orders, the live generation\nof the Postgres tables (orders_read.orders); search, the index behind SEARCH_INDEX_ALIAS (default\norders). Prints each order that is missing, extra, at another version or with other fields, and\nexits 1 if any differs.")
		fs.PrintDefaults()
	}
	maxReport := fs.Int("max-report", 50, "print at most this many differences")
	if len(args) == 0 || (args[0] != "search" && args[0] != "orders") {
		if len(args) > 0 && (args[0] == "-h" || args[0] == "--help") {
			fs.Usage()
			return nil
		}
		fs.Usage()
		return errUsage
	}
	if help, err := parse(fs, args[1:], stderr); help || err != nil {
		return err
	}
	target := args[0]
	r := envconfig.New(getenv)
	dbURL := r.Required("DATABASE_URL")
	var osURL string
	if target == "search" {
		osURL = r.Required("OPENSEARCH_URL")
	}
	alias := r.String("SEARCH_INDEX_ALIAS", "orders")
	if err := r.Err(); err != nil {
		return err
	}
	pool, err := pgxpool.New(ctx, dbURL)
	if err != nil {
		return fmt.Errorf("postgres: %w", err)
	}
	defer pool.Close()
	var model readModel
	if target == "search" {
		osc, err := opensearch.NewClient(opensearch.Config{Addresses: []string{osURL}})
		if err != nil {
			return fmt.Errorf("OPENSEARCH_URL: %w", err)
		}
		model = searchindex.New(osc, alias)
	} else {
		gen, err := readmodel.Live(ctx, pool)
		if err != nil {
			return err
		}
		model = tableModel{pool: pool, gen: gen}
	}
	store := eventstore.New(pool)

	// Fold the whole store, in position order (version order per order).
	states := map[string]order.State{}
	total, err := store.LastPosition(ctx)
	if err != nil {
		return err
	}
	p := newProgress(stdout, total, "events")
	var after int64
	for {
		evs, err := store.ReadAll(ctx, after, 5000)
		if err != nil {
			return err
		}
		for _, e := range evs {
			payload, err := events.DecodeEnvelope(e)
			if err != nil {
				return fmt.Errorf("event %d of order %s: %w", e.Position, e.OrderID, err)
			}
			states[e.OrderID] = order.Evolve(states[e.OrderID], e, payload)
			after = e.Position
		}
		p.add(int64(len(evs)))
		if len(evs) < 5000 {
			break
		}
	}
	p.done()

	ids := make([]string, 0, len(states))
	for id := range states {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	var diffs []string
	for i := 0; i < len(ids); i += 1000 {
		chunk := ids[i:min(i+1000, len(ids))]
		docs, err := model.Get(ctx, chunk)
		if err != nil {
			return err
		}
		for _, id := range chunk {
			want := states[id].View()
			got, ok := docs[id]
			switch {
			case !ok:
				diffs = append(diffs, fmt.Sprintf("missing  %s (version %d in the event store)", id, want.Version))
			case got.Version != want.Version:
				diffs = append(diffs, fmt.Sprintf("version  %s: read model %d, event store %d", id, got.Version, want.Version))
			case !reflect.DeepEqual(order.FromView(got), order.FromView(want)):
				g, _ := json.Marshal(got)
				w, _ := json.Marshal(want)
				diffs = append(diffs, fmt.Sprintf("fields   %s at version %d differ:\n         read model:  %s\n         event store: %s", id, want.Version, g, w))
			}
		}
	}
	err = model.EachID(ctx, func(id string) {
		if _, ok := states[id]; !ok {
			diffs = append(diffs, fmt.Sprintf("extra    %s (in the read model, not in the event store)", id))
		}
	})
	if err != nil {
		return err
	}
	for i, d := range diffs {
		if i == *maxReport {
			fmt.Fprintf(stdout, "... and %d more\n", len(diffs)-i)
			break
		}
		fmt.Fprintln(stdout, d)
	}
	fmt.Fprintf(stdout, "verified %d orders against the %s read model: %d differences\n", len(states), target, len(diffs))
	if len(diffs) > 0 {
		return errDifferences
	}
	return nil
}

// readModel is what verify compares with the event store.
type readModel interface {
	Get(ctx context.Context, ids []string) (map[string]api.Order, error)
	EachID(ctx context.Context, fn func(id string)) error
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
