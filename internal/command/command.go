// Package command is the application layer of the write side: it runs a command on an order. Load the
// order (its latest snapshot and the events after it) and fold it, decide on that state
// (internal/order), encode the decided events, append them with their outbox rows in one transaction
// (internal/eventstore, which owns the optimistic concurrency check and the conflict retry), and answer
// with the state folded after them; snapshots are taken afterwards, off the request path
// (snapshots.go). It also reads orders from the event store, now or at a point of their history, and
// their audit trail (history.go). Idempotent requests are recognised here. The HTTP layer
// (services/command/httpapi) only parses requests, calls a Service and maps its errors to answers; the
// benchmarks and tests drive a Service the same way.
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

// Store is what the application needs of the event store (an *eventstore.Store).
type Store interface {
	Append(ctx context.Context, req eventstore.AppendRequest) ([]events.Envelope, error)
	Read(ctx context.Context, streamID string, r eventstore.Range) ([]events.Envelope, error)
	ReadForFold(ctx context.Context, streamID string, after, to int64) ([]events.Envelope, error)
	VersionAt(ctx context.Context, streamID string, t time.Time) (int64, error)
	LatestSnapshot(ctx context.Context, streamID string, atOrBelow int64) (*eventstore.Snapshot, error)
	UpdateWith(ctx context.Context, streamID string, retries int, attempt eventstore.Attempt) ([]events.Envelope, error)
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
	// WriteVersion caps the schema version new events are written at (EVENTS_WRITE_VERSION during a
	// rolling upgrade, docs/events.md); 0 writes each type at its current version.
	WriteVersion int
	// Snapshots, when set, is where loads start from and who takes new snapshots; nil folds every load
	// from the order's first event (SNAPSHOT_EVERY=0).
	Snapshots *Snapshots
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
	st := evolve(order.State{}, envs, payloads)
	out, err := answer(st)
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
	s.Snapshots.afterCommand(st, 0, 0)
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
// does not exist fails with an *order.Error of kind NotFound; one whose history holds an event this code
// cannot read (a newer release wrote it) fails with an *events.UnknownEventError, and nothing is decided.
func (s *Service) Execute(ctx context.Context, id string, pinned int64, md events.Metadata, decide order.Decision) (Outcome, error) {
	if _, err := uuid.Parse(id); err != nil {
		return Outcome{}, order.ErrNotFound()
	}
	var state order.State
	var payloads []events.Payload
	var base int64
	attempt := func(ctx context.Context) (int64, []eventstore.NewEvent, error) {
		st, b, err := s.load(ctx, id, 0)
		if err != nil {
			return 0, nil, err
		}
		if pinned > 0 && st.Version != pinned {
			if !st.Exists() {
				return 0, nil, order.ErrNotFound()
			}
			return 0, nil, fmt.Errorf("%w: it is at version %d, not %d", ErrStaleVersion, st.Version, pinned)
		}
		ps, err := decide(st)
		if err != nil {
			return 0, nil, err
		}
		evs, err := s.encode(ps, md)
		if err != nil {
			return 0, nil, err
		}
		state, payloads, base = st, ps, b
		return st.Version, evs, nil
	}
	retries := s.MaxRetries
	if pinned > 0 {
		retries = 0
	}
	appended, err := s.Store.UpdateWith(ctx, id, retries, attempt)
	if pinned > 0 && errors.Is(err, eventstore.ErrVersionConflict) {
		err = fmt.Errorf("%w: %w", ErrStaleVersion, err) // the version the client named is no longer current
	}
	if err != nil {
		return Outcome{}, err
	}
	after := evolve(state, appended, payloads)
	s.Snapshots.afterCommand(after, state.Version, base)
	return answer(after)
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
		typ, sv, data, err := events.EncodeAt(p, s.WriteVersion)
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
