package eventstore

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/orders-oss/orders/pkg/events"
)

// DefaultRetries is a sensible retries argument for Update: enough for a handful of commands racing
// on one order, few enough that a hot order answers a conflict quickly.
const DefaultRetries = 5

// Decide chooses the events to append given a stream's history (oldest first; empty for a new
// stream). Returning an error, or no events, appends nothing. It may run several times (see Update),
// so it must not have effects of its own.
type Decide func(history []events.Envelope) ([]NewEvent, error)

// Update loads the stream, lets decide choose new events and appends them after the version it saw.
// When another command appended in between (ErrVersionConflict), it runs again on the fresh history,
// at most retries more times (0: never), then returns an error wrapping ErrVersionConflict. It returns
// the history decide saw last and the appended envelopes. The application only decides; the store owns
// the concurrency check and the retry.
func (s *Store) Update(ctx context.Context, streamID string, retries int, decide Decide) (history, appended []events.Envelope, err error) {
	appended, err = s.UpdateWith(ctx, streamID, retries, func(ctx context.Context) (int64, []NewEvent, *IdempotencyRecord, error) {
		h, err := s.Load(ctx, streamID)
		if err != nil {
			return 0, nil, nil, err
		}
		history = h
		next, err := decide(h)
		return lastVersion(h), next, nil, err
	})
	return history, appended, err
}

// Attempt loads a stream its own way (the command service folds the latest snapshot and the events
// after it), decides on what it loaded, and returns the version it decided on (0 for a new stream), the
// events to append after that version and, optionally, the idempotency record to store with them. Like
// Decide it may run several times, so it must have no effects of its own; returning an error, or no
// events, appends nothing.
type Attempt func(ctx context.Context) (version int64, next []NewEvent, idem *IdempotencyRecord, err error)

// UpdateWith is Update for a caller that loads the stream itself: it runs attempt and appends what it
// chose after the version it decided on; on ErrVersionConflict it runs attempt again, at most retries
// more times, then returns an error wrapping ErrVersionConflict. It returns the appended envelopes.
func (s *Store) UpdateWith(ctx context.Context, streamID string, retries int, attempt Attempt) ([]events.Envelope, error) {
	for n := 0; ; n++ {
		appended, err := s.try(ctx, streamID, attempt)
		if !errors.Is(err, ErrVersionConflict) {
			return appended, err
		}
		if n >= retries {
			return nil, fmt.Errorf("update %s: gave up after %d attempts: %w", streamID, n+1, err)
		}
		// A short random pause spreads commands racing on one order, so each retry is likelier to find
		// the order quiet; it grows with the attempts and stays well under a request's budget.
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(time.Duration(rand.Int64N(int64(n+1) * int64(time.Millisecond)))):
		}
	}
}

// try is one attempt: decide, then append after the version decided on.
func (s *Store) try(ctx context.Context, streamID string, attempt Attempt) ([]events.Envelope, error) {
	version, next, idem, err := attempt(ctx)
	if err != nil || len(next) == 0 {
		return nil, err
	}
	return s.Append(ctx, AppendRequest{StreamID: streamID, ExpectedVersion: version, Events: next, Idempotency: idem})
}

func lastVersion(history []events.Envelope) int64 {
	if len(history) == 0 {
		return 0
	}
	return history[len(history)-1].Version
}

// UpdateIfVersion is Update for a caller that pins the version (an If-Match request): when the stream
// is not at expected it returns an error wrapping ErrVersionMismatch without calling decide, and when
// another command appends between the load and the append it returns ErrVersionConflict; it never
// retries. The history is returned in both cases (an empty one means the stream does not exist).
func (s *Store) UpdateIfVersion(ctx context.Context, streamID string, expected int64, decide Decide) (history, appended []events.Envelope, err error) {
	if expected < 0 {
		return nil, nil, fmt.Errorf("update %s: expected version %d is negative", streamID, expected)
	}
	history, err = s.Load(ctx, streamID)
	if err != nil {
		return nil, nil, err
	}
	version := lastVersion(history)
	if version != expected {
		return history, nil, fmt.Errorf("update %s: at version %d, not %d: %w", streamID, version, expected, ErrVersionMismatch)
	}
	next, err := decide(history)
	if err != nil || len(next) == 0 {
		return history, nil, err
	}
	appended, err = s.Append(ctx, AppendRequest{StreamID: streamID, ExpectedVersion: version, Events: next})
	if err != nil {
		return history, nil, err
	}
	return history, appended, nil
}
