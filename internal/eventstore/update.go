package eventstore

import (
	"context"
	"errors"

	"github.com/orders-oss/orders/pkg/events"
)

// Decide chooses the events to append given a stream's history (oldest first). Returning an error
// appends nothing.
type Decide func(history []events.Envelope) ([]NewEvent, error)

// Update loads the stream, lets decide choose new events and appends them after the version it saw. When
// another command appended in between (ErrVersionConflict), it runs again on the fresh history, at most
// retries more times, then returns ErrVersionConflict. It returns the history decide saw last and the
// appended envelopes.
func (s *Store) Update(ctx context.Context, streamID string, retries int, decide Decide) (history, appended []events.Envelope, err error) {
	for attempt := 0; ; attempt++ {
		history, err = s.Load(ctx, streamID)
		if err != nil {
			return nil, nil, err
		}
		next, err := decide(history)
		if err != nil {
			return history, nil, err
		}
		var version int64
		if len(history) > 0 {
			version = history[len(history)-1].Version
		}
		appended, err = s.Append(ctx, AppendRequest{StreamID: streamID, ExpectedVersion: version, Events: next})
		if errors.Is(err, ErrVersionConflict) && attempt < retries {
			continue
		}
		return history, appended, err
	}
}
