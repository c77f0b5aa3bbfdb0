package projection

import (
	"context"
	"errors"
	"fmt"

	"github.com/google/uuid"

	"github.com/orders-oss/orders/internal/order"
	"github.com/orders-oss/orders/pkg/api"
	"github.com/orders-oss/orders/pkg/events"
)

// The one batch fold both read models share: group a batch by order, classify each event against the
// version the read model holds, fold the new ones with the domain's own order.Evolve, never apply a
// gap. A read model's handler reads the current states, calls FoldBatch, writes Changes its own way
// and tells the Fold what its store did with each change (Written, Stale, Refused), which settles the
// counts of applied and duplicate events.

// Change is an order a batch moved forward: its state after the batch's new events, and how many of
// the batch's events that took.
type Change struct {
	State  order.State
	Events int
}

// Current reads the states a read model holds for the given orders; an order it does not hold is
// absent from the map.
type Current func(ctx context.Context, ids []string) (map[string]order.State, error)

// Fold is the outcome of folding one batch.
type Fold struct {
	// Result counts the duplicates found by version and the failed orders (gaps, ids that are not
	// UUIDs); Written, Stale and Refused complete it once the handler has written Changes.
	Result Result
	// Changes are the orders with new events, in the order they first appear in the batch.
	Changes []Change
}

// ByOrder groups a batch by order id, keeping each order's events in batch order; ids lists the
// orders in the order they first appear.
func ByOrder(batch []Event) (ids []string, byOrder map[string][]Event) {
	byOrder = map[string][]Event{}
	for _, e := range batch {
		id := e.Envelope.OrderID
		if _, seen := byOrder[id]; !seen {
			ids = append(ids, id)
		}
		byOrder[id] = append(byOrder[id], e)
	}
	return ids, byOrder
}

// FoldBatch folds a batch onto the orders' current states. Only orders whose first event in the batch
// is not their first event at all are read with current: an order that starts in this batch is folded
// from nothing (and if the read model already holds it at that version or later, its version-guarded
// write changes nothing, and Stale counts its events as duplicates). An order whose events would leave
// a gap fails with a *GapError and has none of its events folded; so does an order whose id is not a
// UUID (no command ever wrote it). The error is current's.
func FoldBatch(ctx context.Context, batch []Event, current Current) (*Fold, error) {
	f := &Fold{Result: Result{Failed: map[string]error{}}}
	ids, byOrder := ByOrder(batch)
	var read []string
	for _, id := range ids {
		if _, err := uuid.Parse(id); err != nil {
			f.Result.Failed[id] = fmt.Errorf("order id %q is not a UUID", id)
			continue
		}
		if byOrder[id][0].Envelope.Version > 1 {
			read = append(read, id)
		}
	}
	states := map[string]order.State{}
	if len(read) > 0 {
		var err error
		if states, err = current(ctx, read); err != nil {
			return nil, err
		}
	}
	for _, id := range ids {
		if f.Result.Failed[id] != nil {
			continue
		}
		st, n, dups := states[id], 0, 0
		var gap error
		for _, e := range byOrder[id] {
			switch Classify(st.Version, e.Envelope.Version) {
			case StepDuplicate:
				dups++
				continue
			case StepGap:
				gap = &GapError{OrderID: id, Applied: st.Version, Version: e.Envelope.Version}
			}
			if gap != nil {
				break
			}
			st = order.Evolve(st, e.Envelope, e.Payload)
			n++
		}
		if gap != nil {
			f.Result.Failed[id] = gap // the runtime parks every event of the order in this batch
			continue
		}
		f.Result.Duplicates += dups
		if n > 0 {
			f.Changes = append(f.Changes, Change{State: st, Events: n})
		}
	}
	return f, nil
}

// Written records that the read model wrote c over the version it held (prev, 0 when it held none):
// an order folded from nothing may have been held at an older version, and only the events above it
// were new.
func (f *Fold) Written(c Change, prev int64) {
	applied := int(min(int64(c.Events), max(c.State.Version-prev, 0)))
	f.Result.Applied += applied
	f.Result.Duplicates += c.Events - applied
}

// Stale records that the read model already held c's version or a newer one (a redelivery, or another
// member after a rebalance): none of c's events was new.
func (f *Fold) Stale(c Change) { f.Result.Duplicates += c.Events }

// Refused records that the read model refused to store c: the runtime parks the order.
func (f *Fold) Refused(c Change, why error) { f.Result.Failed[c.State.ID] = why }

// Keys open the personal data the folded states hold sealed (a *pii.Keyring): the read models hold it
// in plain text, to serve and search it, until it is erased.
type Keys interface {
	Opener(ctx context.Context, keyIDs []string) (events.Opener, error)
}

// Views returns the changed orders in their API shape, what a read model stores, with their personal
// data opened with keys (read once for the whole batch); data whose key is gone shows as erased. A
// change whose data cannot be opened (it does not authenticate) is refused, and dropped from Changes;
// a failure to read the keys fails the batch.
func (f *Fold) Views(ctx context.Context, keys Keys) ([]api.Order, error) {
	var ids []string
	for _, c := range f.Changes {
		ids = append(ids, c.State.KeyIDs()...)
	}
	var o events.Opener
	if len(ids) > 0 {
		if keys == nil {
			return nil, errors.New("sealed personal data, and no data keys configured")
		}
		var err error
		if o, err = keys.Opener(ctx, ids); err != nil {
			return nil, err
		}
	}
	docs := make([]api.Order, 0, len(f.Changes))
	kept := f.Changes[:0]
	for _, c := range f.Changes {
		v, err := c.State.View(o)
		if err != nil {
			f.Refused(c, fmt.Errorf("order %s at version %d: %w", c.State.ID, c.State.Version, err))
			continue
		}
		docs = append(docs, v)
		kept = append(kept, c)
	}
	f.Changes = kept
	return docs, nil
}
