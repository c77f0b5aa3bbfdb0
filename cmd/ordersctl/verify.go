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
	"github.com/orders-oss/orders/pkg/api"
	"github.com/orders-oss/orders/pkg/events"
	"github.com/orders-oss/orders/services/projector-search/searchindex"
)

// errDifferences: verify found differences (exit code 1, after printing them).
var errDifferences = errors.New("the read model differs from the event store")

// verify folds every order from the event store and compares it with the read model.
func verify(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("ordersctl verify", flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: ordersctl verify search [--max-report N]\n\nFolds every order from the event store and compares it with the search index (SEARCH_INDEX_ALIAS,\ndefault orders): prints each order that is missing, extra, at another version or with other fields,\nand exits 1 if any differs.")
		fs.PrintDefaults()
	}
	maxReport := fs.Int("max-report", 50, "print at most this many differences")
	if len(args) == 0 || args[0] != "search" {
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
	r := envconfig.New(getenv)
	dbURL := r.Required("DATABASE_URL")
	osURL := r.Required("OPENSEARCH_URL")
	alias := r.String("SEARCH_INDEX_ALIAS", "orders")
	if err := r.Err(); err != nil {
		return err
	}
	pool, err := pgxpool.New(ctx, dbURL)
	if err != nil {
		return fmt.Errorf("postgres: %w", err)
	}
	defer pool.Close()
	osc, err := opensearch.NewClient(opensearch.Config{Addresses: []string{osURL}})
	if err != nil {
		return fmt.Errorf("OPENSEARCH_URL: %w", err)
	}
	ix := searchindex.New(osc, alias)
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
		docs, err := ix.Get(ctx, chunk)
		if err != nil {
			return err
		}
		for _, id := range chunk {
			want := api.FromState(states[id])
			got, ok := docs[id]
			switch {
			case !ok:
				diffs = append(diffs, fmt.Sprintf("missing  %s (version %d in the event store)", id, want.Version))
			case got.Version != want.Version:
				diffs = append(diffs, fmt.Sprintf("version  %s: index %d, event store %d", id, got.Version, want.Version))
			case !reflect.DeepEqual(api.ToState(got), api.ToState(want)):
				g, _ := json.Marshal(got)
				w, _ := json.Marshal(want)
				diffs = append(diffs, fmt.Sprintf("fields   %s at version %d differ:\n         index:       %s\n         event store: %s", id, want.Version, g, w))
			}
		}
	}
	err = ix.EachID(ctx, func(id string) {
		if _, ok := states[id]; !ok {
			diffs = append(diffs, fmt.Sprintf("extra    %s (in the index, not in the event store)", id))
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
	fmt.Fprintf(stdout, "verified %d orders against the search index: %d differences\n", len(states), len(diffs))
	if len(diffs) > 0 {
		return errDifferences
	}
	return nil
}
