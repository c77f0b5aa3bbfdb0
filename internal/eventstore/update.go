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

// KeyedDecide is a Decide that may also return the idempotency record to store with the events (the
// answer is known once the events are decided), in the same statement as the append.
type KeyedDecide func(history []events.Envelope) ([]NewEvent, *IdempotencyRecord, error)

func keyless(decide Decide) KeyedDecide {
	return func(h []events.Envelope) ([]NewEvent, *IdempotencyRecord, error) {
		evs, err := decide(h)
		return evs, nil, err
	}
}

// Update loads the stream, lets decide choose new events and appends them after the version it saw.
// When another command appended in between (ErrVersionConflict), it runs again on the fresh history,
// at most retries more times (0: never), then returns an error wrapping ErrVersionConflict. It returns
// the history decide saw last and the appended envelopes. The application only decides; the store owns
// the concurrency check and the retry.
func (s *Store) Update(ctx context.Context, streamID string, retries int, decide Decide) (history, appended []events.Envelope, err error) {
	return s.UpdateKeyed(ctx, streamID, retries, keyless(decide))
}

// UpdateKeyed is Update with a decide that may return an idempotency record to store with the events.
// When the record's key is taken meanwhile it returns ErrIdempotencyKeyExists and appends nothing.
func (s *Store) UpdateKeyed(ctx context.Context, streamID string, retries int, decide KeyedDecide) (history, appended []events.Envelope, err error) {
	for attempt := 0; ; attempt++ {
		history, appended, err = s.update(ctx, streamID, -1, decide)
		if !errors.Is(err, ErrVersionConflict) {
			return history, appended, err
		}
		if attempt >= retries {
			return history, nil, fmt.Errorf("update %s: gave up after %d attempts: %w", streamID, attempt+1, err)
		}
		// A short random pause spreads commands racing on one order, so each retry is likelier to find
		// the order quiet; it grows with the attempts and stays well under a request's budget.
		select {
		case <-ctx.Done():
			return history, nil, ctx.Err()
		case <-time.After(time.Duration(rand.Int64N(int64(attempt+1) * int64(time.Millisecond)))):
		}
	}
}

// UpdateIfVersion is Update for a caller that pins the version (an If-Match request): when the stream
// is not at expected it returns an error wrapping ErrVersionMismatch without calling decide, and when
// another command appends between the load and the append it returns ErrVersionConflict; it never
// retries. The history is returned in both cases (an empty one means the stream does not exist).
func (s *Store) UpdateIfVersion(ctx context.Context, streamID string, expected int64, decide Decide) (history, appended []events.Envelope, err error) {
	return s.UpdateIfVersionKeyed(ctx, streamID, expected, keyless(decide))
}

// UpdateIfVersionKeyed is UpdateIfVersion with a decide that may return an idempotency record.
func (s *Store) UpdateIfVersionKeyed(ctx context.Context, streamID string, expected int64, decide KeyedDecide) (history, appended []events.Envelope, err error) {
	if expected < 0 {
		return nil, nil, fmt.Errorf("update %s: expected version %d is negative", streamID, expected)
	}
	return s.update(ctx, streamID, expected, decide)
}

// update is one attempt: load, check the pinned version (unless expected < 0), decide, append.
func (s *Store) update(ctx context.Context, streamID string, expected int64, decide KeyedDecide) (history, appended []events.Envelope, err error) {
	history, err = s.Load(ctx, streamID)
	if err != nil {
		return nil, nil, err
	}
	var version int64
	if len(history) > 0 {
		version = history[len(history)-1].Version
	}
	if expected >= 0 && version != expected {
		return history, nil, fmt.Errorf("update %s: at version %d, not %d: %w", streamID, version, expected, ErrVersionMismatch)
	}
	next, idem, err := decide(history)
	if err != nil || len(next) == 0 {
		return history, nil, err
	}
	appended, err = s.Append(ctx, AppendRequest{StreamID: streamID, ExpectedVersion: version, Events: next, Idempotency: idem})
	if err != nil {
		return history, nil, err
	}
	return history, appended, nil
}
