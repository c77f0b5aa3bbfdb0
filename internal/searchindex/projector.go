package searchindex

import (
	"context"
	"fmt"

	"github.com/orders-oss/orders/internal/order"
	"github.com/orders-oss/orders/internal/projection"
	"github.com/orders-oss/orders/pkg/api"
	"github.com/orders-oss/orders/pkg/events"
)

// Documents is what the search projector needs of an index: read the current documents of orders in
// real time, and write documents version-guarded (an *Index; a fake in unit tests).
type Documents interface {
	Get(ctx context.Context, ids []string) (map[string]api.Order, error)
	Write(ctx context.Context, docs []api.Order, refresh bool) (WriteResult, error)
	// ExpungeDeleted removes the replaced versions of documents from the index's storage.
	ExpungeDeleted(ctx context.Context) error
}

// Handler is projector-search's projection.Handler: for each batch it reads the current documents of
// the orders the batch continues, folds the batch (projection.FoldBatch) and writes the changed
// documents in one bulk request at each order's version (external versioning: OpenSearch itself
// refuses a stale or duplicate write, which counts as a duplicate). A document OpenSearch refuses for
// another reason fails its order (the runtime parks it); the others are unaffected.
//
// Personal data is opened with Keys before it is indexed (the index holds it in plain text, to search
// it, until it is erased). After a batch that erases personal data (PersonalDataErased), the replaced
// document versions, which still hold it on disk until their segments are merged, are expunged:
// OnErase asks the live projector's Expunger to (in the background, once OpenSearch lets go of them);
// without it (a rebuild), the batch does it itself.
type Handler struct {
	Index   Documents
	Keys    projection.Keys
	OnErase func()
}

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
	docs, err := fold.Views(ctx, h.Keys)
	if err != nil {
		return projection.Result{}, err
	}
	w, err := h.Index.Write(ctx, docs, false)
	if err != nil {
		return projection.Result{}, err
	}
	if erases(batch) {
		if h.OnErase != nil {
			h.OnErase() // in the background, off the batch
		} else if err := h.Index.ExpungeDeleted(ctx); err != nil {
			return projection.Result{}, fmt.Errorf("expunge the erased documents' old versions: %w", err)
		}
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

// erases reports whether a batch erases personal data.
func erases(batch []projection.Event) bool {
	for _, e := range batch {
		if _, ok := e.Payload.(events.PersonalDataErased); ok {
			return true
		}
	}
	return false
}
