// Package projector folds events into the search index: for each order touched by a batch it reads the
// current document, applies the order's new events with the domain's own order.Evolve, and writes the
// document back at the order's new version (external versioning: OpenSearch itself refuses a stale or
// duplicate write). An event at or below the document's version is a duplicate and changes nothing; a
// gap (a version more than one ahead) is never applied: the order fails and is left to the caller to
// park.
package projector

import (
	"context"
	"fmt"

	"github.com/orders-oss/orders/internal/order"
	"github.com/orders-oss/orders/internal/projection"
	"github.com/orders-oss/orders/pkg/api"
	"github.com/orders-oss/orders/services/projector-search/searchindex"
)

// Event is one decoded event of the stream.
type Event = projection.Event

// Result says what a batch did: events folded into a document written at a newer version, events the
// index already held (skipped by version, or a refused write), and the orders that failed.
type Result = projection.Result

// Handler is the search projector's projection.Handler.
type Handler struct{ Index *searchindex.Index }

// Apply folds the batch into the index (ends are not needed: the consumer group's offsets are the
// index's position).
func (h Handler) Apply(ctx context.Context, batch []Event, _ []projection.Position) (Result, error) {
	return Apply(ctx, h.Index, batch)
}

// Apply folds the batch into the index. Orders are independent: one order's failure does not stop the
// others. The error is for a failure of the whole batch (the index cannot be reached).
func Apply(ctx context.Context, ix *searchindex.Index, batch []Event) (Result, error) {
	res := Result{Failed: map[string]error{}}
	var ids []string
	byOrder := map[string][]Event{}
	for _, e := range batch {
		id := e.Envelope.OrderID
		if _, seen := byOrder[id]; !seen {
			ids = append(ids, id)
		}
		byOrder[id] = append(byOrder[id], e)
	}
	// Only orders whose first event here is not their first event at all need their document: an order
	// that starts in this batch is folded from nothing, and if the index already holds it at this
	// version or later, the versioned write is refused (409) and counted as a duplicate.
	var read []string
	for _, id := range ids {
		if byOrder[id][0].Envelope.Version > 1 {
			read = append(read, id)
		}
	}
	current, err := ix.Get(ctx, read)
	if err != nil {
		return res, err
	}
	var docs []api.Order
	applied := map[string]int{}
	for _, id := range ids {
		var st order.State
		if doc, ok := current[id]; ok {
			st = order.FromView(doc)
		}
		n := 0
		for _, e := range byOrder[id] {
			v := e.Envelope.Version
			switch {
			case v <= st.Version:
				res.Duplicates++
				continue
			case v != st.Version+1:
				res.Failed[id] = fmt.Errorf("order %s: event version %d after indexed version %d (a gap)", id, v, st.Version)
			}
			if res.Failed[id] != nil {
				break
			}
			st = order.Evolve(st, e.Envelope, e.Payload)
			n++
		}
		if n > 0 && res.Failed[id] == nil {
			docs = append(docs, st.View())
			applied[id] = n
		}
	}
	w, err := ix.Write(ctx, docs, false)
	if err != nil {
		return res, err
	}
	for _, d := range docs {
		if msg, failed := w.Failures[d.ID]; failed {
			res.Failed[d.ID] = fmt.Errorf("index order %s at version %d: %s", d.ID, d.Version, msg)
			continue
		}
		if w.Stale[d.ID] {
			// The index already holds this version or a newer one (a redelivery, or another member after
			// a rebalance): nothing of this batch was new for the order.
			res.Duplicates += applied[d.ID]
			continue
		}
		res.Applied += applied[d.ID]
	}
	return res, nil
}
