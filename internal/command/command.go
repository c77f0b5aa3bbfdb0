// Package command is the application layer of the write side: it runs a command on an order. Load the
// order's history and fold it, decide on that state (internal/order), encode the decided events, append
// them with their outbox rows in one transaction (internal/eventstore, which owns the optimistic
// concurrency check and the conflict retry), and answer with the state folded after them. Idempotent
// requests are recognised here. The HTTP layer (services/command/httpapi) only parses requests, calls
// a Service and maps its errors to answers; the benchmarks and tests drive a Service the same way.
package command

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"

	"github.com/orders-oss/orders/internal/eventstore"
	"github.com/orders-oss/orders/internal/order"
	"github.com/orders-oss/orders/pkg/api"
	"github.com/orders-oss/orders/pkg/events"
)

// Store is what the application needs of the event store.
type Store interface {
	Append(ctx context.Context, req eventstore.AppendRequest) ([]events.Envelope, error)
	LoadPage(ctx context.Context, streamID string, afterVersion int64, limit int) ([]events.Envelope, error)
	Update(ctx context.Context, streamID string, retries int, decide eventstore.Decide) (history, appended []events.Envelope, err error)
	UpdateIfVersion(ctx context.Context, streamID string, expected int64, decide eventstore.Decide) (history, appended []events.Envelope, err error)
	Idempotency(ctx context.Context, key string) (*eventstore.IdempotencyRecord, error)
}

var (
	// ErrStaleVersion: the order is not at the version the caller pinned (If-Match); nothing was decided
	// or appended.
	ErrStaleVersion = errors.New("the order is not at the pinned version")
	// ErrKeyReused: the idempotency key was used before with a different request; nothing was appended.
	ErrKeyReused = errors.New("the idempotency key was used with a different request")
)

// Service runs commands.
type Service struct {
	Store Store
	// MaxRetries is how many times a command without a pinned version is decided again on fresh state
	// after a concurrent change, before it fails with eventstore.ErrVersionConflict.
	MaxRetries int
	// Now gives the occurred_at of new events (time.Now when nil).
	Now func() time.Time
}

// Idempotency identifies a request that may be retried: Key is the client's Idempotency-Key and
// RequestHash what the request said (a retry must say the same).
type Idempotency struct {
	Key         string
	RequestHash []byte
}

// Outcome is a command's answer.
type Outcome struct {
	// Order is the order as its events made it after the command.
	Order api.Order
	// Body is Order as JSON: for an idempotent retry, the exact bytes answered the first time.
	Body []byte
	// Replayed is true when the command was an idempotent retry: nothing was appended.
	Replayed bool
}

// Place decides a new order and stores it. With idem, a retry of the same request answers the first
// outcome (Replayed) and appends nothing; the key with another request fails with ErrKeyReused.
func (s *Service) Place(ctx context.Context, md events.Metadata, cmd order.PlaceOrder, idem *Idempotency) (Outcome, error) {
	if idem != nil {
		if out, done, err := s.replay(ctx, idem); done || err != nil {
			return out, err
		}
	}
	payloads, err := order.Place(cmd)
	if err != nil {
		return Outcome{}, err
	}
	id := uuid.Must(uuid.NewV7()).String()
	evs, err := s.encode(payloads, md)
	if err != nil {
		return Outcome{}, err
	}
	// The answer is known before the append (the state is a fold of what is about to be stored), so
	// the idempotency record commits with the events.
	envs := make([]events.Envelope, len(evs))
	for i, e := range evs {
		envs[i] = events.Envelope{OrderID: id, Version: int64(i + 1), OccurredAt: e.OccurredAt}
	}
	out, err := answer(evolve(order.State{}, envs, payloads))
	if err != nil {
		return Outcome{}, err
	}
	req := eventstore.AppendRequest{StreamID: id, Events: evs}
	if idem != nil {
		req.Idempotency = &eventstore.IdempotencyRecord{Key: idem.Key, RequestHash: idem.RequestHash, OrderID: id,
			Status: 201, Response: out.Body}
	}
	_, err = s.Store.Append(ctx, req)
	if errors.Is(err, eventstore.ErrIdempotencyKeyExists) { // a concurrent request with the same key won
		if out, done, rerr := s.replay(ctx, idem); done || rerr != nil {
			return out, rerr
		}
	}
	if err != nil {
		return Outcome{}, err
	}
	return out, nil
}

// replay answers a retried request with its first outcome (done), refuses a reused key, or reports
// that the key is new (not done).
func (s *Service) replay(ctx context.Context, idem *Idempotency) (out Outcome, done bool, err error) {
	prev, err := s.Store.Idempotency(ctx, idem.Key)
	if err != nil || prev == nil {
		return Outcome{}, false, err
	}
	if string(prev.RequestHash) != string(idem.RequestHash) {
		return Outcome{}, true, ErrKeyReused
	}
	out = Outcome{Body: prev.Response, Replayed: true}
	if err := json.Unmarshal(prev.Response, &out.Order); err != nil {
		return Outcome{}, true, fmt.Errorf("idempotency key %q: stored answer: %w", idem.Key, err)
	}
	return out, true, nil
}

// Execute decides a command on an existing order and stores its events. pinned > 0 is the version the
// caller saw (If-Match): when the order is elsewhere it fails with ErrStaleVersion and never retries.
// Otherwise a concurrent change is decided again on fresh state up to MaxRetries times. An order that
// does not exist fails with an *order.Error of kind NotFound.
func (s *Service) Execute(ctx context.Context, id string, pinned int64, md events.Metadata, decide order.Decision) (Outcome, error) {
	if _, err := uuid.Parse(id); err != nil {
		return Outcome{}, order.ErrNotFound()
	}
	var state order.State
	var payloads []events.Payload
	decideOn := func(history []events.Envelope) ([]eventstore.NewEvent, error) {
		st, err := order.Fold(history)
		if err != nil {
			return nil, err
		}
		if payloads, err = decide(st); err != nil {
			return nil, err
		}
		state = st
		return s.encode(payloads, md)
	}
	var history, appended []events.Envelope
	var err error
	if pinned > 0 {
		history, appended, err = s.Store.UpdateIfVersion(ctx, id, pinned, decideOn)
		switch {
		case errors.Is(err, eventstore.ErrVersionMismatch) && len(history) == 0:
			err = order.ErrNotFound()
		case errors.Is(err, eventstore.ErrVersionMismatch), errors.Is(err, eventstore.ErrVersionConflict):
			err = fmt.Errorf("%w: %w", ErrStaleVersion, err) // the version the client named is no longer current
		}
	} else {
		_, appended, err = s.Store.Update(ctx, id, s.MaxRetries, decideOn)
	}
	if err != nil {
		return Outcome{}, err
	}
	return answer(evolve(state, appended, payloads))
}

// Events returns up to limit events of the order's audit trail after version after, in version
// order, and whether more follow. An order without events fails with an *order.Error of kind
// NotFound (after = 0 only: a page past the end is empty).
func (s *Service) Events(ctx context.Context, id string, after int64, limit int) ([]events.Envelope, bool, error) {
	page, err := s.Store.LoadPage(ctx, id, after, limit+1)
	if err != nil {
		return nil, false, err
	}
	if len(page) == 0 && after == 0 {
		return nil, false, order.ErrNotFound()
	}
	if len(page) > limit {
		return page[:limit], true, nil
	}
	return page, false, nil
}

// encode turns decided payloads into events to append, with the command's metadata.
func (s *Service) encode(payloads []events.Payload, md events.Metadata) ([]eventstore.NewEvent, error) {
	now := time.Now
	if s.Now != nil {
		now = s.Now
	}
	at := now().UTC().Truncate(time.Microsecond) // what Postgres keeps, so answers match the audit trail
	out := make([]eventstore.NewEvent, len(payloads))
	for i, p := range payloads {
		typ, sv, data, err := events.Encode(p)
		if err != nil {
			return nil, err
		}
		out[i] = eventstore.NewEvent{Type: typ, SchemaVersion: sv, Data: data, Metadata: md, OccurredAt: at}
	}
	return out, nil
}

// evolve applies just-decided events to the state they were decided on: envs are their envelopes
// (version, time), payloads the decided facts, in the same order. No decoding: they are the facts.
func evolve(st order.State, envs []events.Envelope, payloads []events.Payload) order.State {
	for i, e := range envs {
		st = order.Evolve(st, e, payloads[i])
	}
	return st
}

func answer(st order.State) (Outcome, error) {
	out := Outcome{Order: st.View()}
	body, err := json.Marshal(out.Order)
	if err != nil {
		return Outcome{}, err
	}
	out.Body = body
	return out, nil
}
