package searchindex

import (
	"context"
	"log/slog"
	"time"
)

// DefaultExpungeAfter are the delays, after an erasure, at which an Expunger expunges the replaced
// document versions: OpenSearch renews a shard's retention lease every 30 s, and keeps the deleted
// documents the lease still covers, so an expunge at once may keep them; one after the renewal does not.
var DefaultExpungeAfter = []time.Duration{35 * time.Second, 70 * time.Second}

// Expunger expunges the replaced versions of documents in the background, some time after a batch
// erased personal data (Request), so that the versions holding it leave the disk too. Requests made
// while it waits are served by the same round.
type Expunger struct {
	Index interface {
		ExpungeDeleted(ctx context.Context) error
	}
	// After are the delays after a request at which it expunges (DefaultExpungeAfter when empty).
	After []time.Duration
	Log   *slog.Logger
	due   chan struct{}
}

// NewExpunger returns an expunger of ix; run it with Run.
func NewExpunger(ix interface {
	ExpungeDeleted(ctx context.Context) error
}, log *slog.Logger) *Expunger {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Expunger{Index: ix, After: DefaultExpungeAfter, Log: log, due: make(chan struct{}, 1)}
}

// Request asks for a round of expunges; it never waits.
func (e *Expunger) Request() {
	select {
	case e.due <- struct{}{}:
	default:
	}
}

// Run serves the requests until ctx ends.
func (e *Expunger) Run(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-e.due:
		}
		start := time.Now()
		for _, d := range e.After {
			select {
			case <-ctx.Done():
				return
			case <-time.After(time.Until(start.Add(d))):
			}
			if err := e.Index.ExpungeDeleted(ctx); err != nil && ctx.Err() == nil {
				e.Log.Warn("expunging the replaced documents failed; the next erasure tries again", "error", err.Error())
			}
		}
	}
}
