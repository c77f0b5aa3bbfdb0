package searchindex

import (
	"context"
	"fmt"

	"github.com/orders-oss/orders/internal/order"
	"github.com/orders-oss/orders/internal/projection"
	"github.com/orders-oss/orders/pkg/api"
)

// Documents is what the search projector needs of an index: read the current documents of orders in
// real time, and write documents version-guarded (an *Index; a fake in unit tests).
type Documents interface {
	Get(ctx context.Context, ids []string) (map[string]api.Order, error)
	Write(ctx context.Context, docs []api.Order, refresh bool) (WriteResult, error)
}

// Handler is projector-search's projection.Handler: for each batch it reads the current documents of
// the orders the batch continues, folds the batch (projection.FoldBatch) and writes the changed
// documents in one bulk request at each order's version (external versioning: OpenSearch itself
// refuses a stale or duplicate write, which counts as a duplicate). A document OpenSearch refuses for
// another reason fails its order (the runtime parks it); the others are unaffected.
type Handler struct{ Index Documents }

// Apply folds the batch into the index (ends are not needed: the consumer group's offsets are the
// index's position). The error is for a failure of the whole batch (the index cannot be reached).
func (h Handler) Apply(ctx context.Context, batch []projection.Event, _ []projection.Position) (projection.Result, error) {
	fold, err := projection.FoldBatch(ctx, batch, func(ctx context.Context, ids []string) (map[string]order.State, error) {
		docs, err := h.Index.Get(ctx, ids)
		return order.FromViews(docs), err
	})
	if err != nil {
		return projection.Result{}, err
	}
	docs := make([]api.Order, len(fold.Changes))
	for i, c := range fold.Changes {
		docs[i] = c.State.View()
	}
	w, err := h.Index.Write(ctx, docs, false)
	if err != nil {
		return projection.Result{}, err
	}
	for _, c := range fold.Changes {
		id := c.State.ID
		switch msg, failed := w.Failures[id]; {
		case failed:
			fold.Refused(c, fmt.Errorf("index order %s at version %d: %s", id, c.State.Version, msg))
		case w.Stale[id]:
			fold.Stale(c)
		default:
			// OpenSearch does not say which version it replaced: every event folded into the written
			// document counts as applied.
			fold.Written(c, 0)
		}
	}
	return fold.Result, nil
}
