// Package command is the application layer of the write side: it runs a command on an order. Load the
// order (its latest snapshot and the events after it) and fold it, decide on that state
// (internal/order), encode the decided events, append them with their outbox rows in one transaction
// (internal/eventstore, which owns the optimistic concurrency check and the conflict retry), and answer
// with the state folded after them; snapshots are taken afterwards, off the request path
// (snapshots.go). It also reads orders from the event store, now or at a point of their history, and
// their audit trail (history.go). Idempotent requests are recognised here, per principal, and who may do
// what to which order is decided here too (Authorize): every entry point takes the authenticated
// principal. The HTTP layer (services/command/httpapi) only parses requests, calls a Service and maps
// its errors to answers; the benchmarks and tests drive a Service the same way.
//
// Personal data (docs/privacy.md) is sealed here, with the customer's data key (Keys), before anything
// is stored: the decided events, hence the events table, the outbox, the topic and the snapshots, hold
// it only sealed, and the idempotency records not at all (a retry is answered by folding the order at
// the version the first answer showed). It is opened only to answer. Erasing a customer's personal
// data is erasure.go.
package command

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/orders-oss/orders/internal/auth"
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
	Idempotency(ctx context.Context, scope, key string) (*eventstore.IdempotencyRecord, error)
	ErasedAt(ctx context.Context, streamID string) (int64, error)
	ErasureStore
}

// Keys is what the application needs of the customers' data keys (a *pii.Keyring).
type Keys interface {
	// Sealer returns the customer's data key as a Sealer, made (and stored) when the customer has none.
	Sealer(ctx context.Context, customerID string) (events.Sealer, error)
	// SealerFor returns the customer's data key as a Sealer; for a customer who has none, a new key and
	// its row, which the append that first seals with it stores (eventstore.AppendRequest.DataKey).
	SealerFor(ctx context.Context, customerID string) (events.Sealer, *eventstore.DataKey, error)
	// Stored: the append that stored the customer's new key (SealerFor) committed.
	Stored(customerID string, key events.Sealer)
	// Opener returns an Opener for data sealed with the given keys.
	Opener(ctx context.Context, keyIDs []string) (events.Opener, error)
}

var (
	// ErrStaleVersion: the order is not at the version the caller pinned (If-Match); nothing was decided
	// or appended.
	ErrStaleVersion = errors.New("the order is not at the pinned version")
	// ErrKeyReused: the idempotency key was used before with a different request; nothing was appended.
	ErrKeyReused = errors.New("the idempotency key was used with a different request")
	// ErrForbidden: the principal may not do this at all (its role), or not for that customer; nothing
	// was read or appended. An order the principal may not see is not found instead (Authorize).
	ErrForbidden = errors.New("forbidden")
)

// Authorize is the one rule of which orders a principal may see and act on: its own customer's for a
// customer, every order for staff and admin. An order the principal may not see does not exist for it
// (order.ErrNotFound), so nothing leaks about other customers' orders. Every read or command that
// loads an order calls it with the folded state.
func Authorize(p auth.Principal, st order.State) error {
	if !st.Exists() || !p.Sees(st.Customer.ID) {
		return order.ErrNotFound()
	}
	return nil
}

func forbidden(p auth.Principal, what string) error {
	return fmt.Errorf("%w: the role %s may not %s", ErrForbidden, p.Role, what)
}

// Service runs commands.
type Service struct {
	Store Store
	// Keys seal the personal data of new events and open it to answer.
	Keys Keys
	// MaxRetries is how many times a command without a pinned version is decided again on fresh state
	// after a concurrent change, before it fails with eventstore.ErrVersionConflict.
	MaxRetries int
	// Now gives the occurred_at of new events (time.Now when nil).
	Now func() time.Time
	// WriteVersion caps the schema version new events are written at (EVENTS_WRITE_VERSION during a
	// rolling upgrade, docs/events.md); 0 writes each type at its current version. Below the versions
	// that seal personal data, it is written in plain text.
	WriteVersion int
	// Snapshots, when set, is where loads start from and who takes new snapshots; nil folds every load
	// from the order's first event (SNAPSHOT_EVERY=0).
	Snapshots *Snapshots
	// IdempotencyTTL is how long an idempotency key is remembered (IDEMPOTENCY_TTL;
	// eventstore.DefaultIdempotencyTTL when 0).
	IdempotencyTTL time.Duration
	// EraseKeys deletes a customer's data keys in the erasure request's transaction
	// (pii.Keyring.Erase).
	EraseKeys eventstore.KeyEraser
	// KeyCacheTTL is how long a replica may go on using a data key it read (PII_KEY_CACHE_TTL): an
	// erasure is completed no sooner after it deleted the keys.
	KeyCacheTTL time.Duration

	wakeOnce sync.Once
	wake     chan struct{} // a request wakes RunErasures
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
	// Body is Order as JSON.
	Body []byte
	// Replayed is true when the command was an idempotent retry: nothing was appended.
	Replayed bool
}

// Place decides a new order and stores it. A customer places orders only for its own customer id
// (ErrForbidden otherwise). With idem, a retry of the same request by the same principal answers the
// first outcome (Replayed) and appends nothing; the key with another request fails with ErrKeyReused.
func (s *Service) Place(ctx context.Context, p auth.Principal, md events.Metadata, cmd order.PlaceOrder, idem *Idempotency) (Outcome, error) {
	if !p.Can(auth.PlaceOrder) {
		return Outcome{}, forbidden(p, "place orders")
	}
	if p.Role == auth.Customer && cmd.Customer.ID != p.CustomerID {
		return Outcome{}, fmt.Errorf("%w: a customer places orders for its own customer id (%s) only", ErrForbidden, p.CustomerID)
	}
	if idem != nil {
		if out, done, err := s.replay(ctx, p, idem); done || err != nil {
			return out, err
		}
	}
	decided, err := order.Place(cmd)
	if err != nil {
		return Outcome{}, err
	}
	id := uuid.Must(uuid.NewV7()).String()
	for attempt := 0; ; attempt++ {
		out, err := s.place(ctx, p, id, cmd.Customer.ID, decided, md, idem)
		// A first order of the same new customer stored its data key first: seal with that one.
		if errors.Is(err, eventstore.ErrDataKeyExists) && attempt < 3 {
			continue
		}
		return out, err
	}
}

// place seals, encodes and appends the events of a new order, with the customer's new data key when
// it has none (stored in the append's transaction).
func (s *Service) place(ctx context.Context, p auth.Principal, id, customerID string, decided []events.Payload, md events.Metadata,
	idem *Idempotency) (Outcome, error) {
	payloads, newKey, err := s.seal(ctx, id, customerID, decided, true)
	if err != nil {
		return Outcome{}, err
	}
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
	// The answer shows what was decided, in plain text: no need to open what was just sealed. (The
	// state folded from the sealed payloads is what a snapshot may take.)
	out, err := s.answer(ctx, evolve(order.State{}, envs, decided))
	if err != nil {
		return Outcome{}, err
	}
	req := eventstore.AppendRequest{StreamID: id, Events: evs}
	if newKey != nil {
		req.DataKey = newKey.row
	}
	if idem != nil {
		req.Idempotency = s.record(p, idem, 201, st.Version)
	}
	_, err = s.Store.Append(ctx, req)
	if errors.Is(err, eventstore.ErrIdempotencyKeyExists) { // a concurrent request with the same key won
		if out, done, rerr := s.replay(ctx, p, idem); done || rerr != nil {
			return out, rerr
		}
	}
	if err != nil {
		return Outcome{}, err
	}
	if newKey != nil {
		s.Keys.Stored(customerID, newKey.sealer)
	}
	s.Snapshots.afterCommand(st, 0, 0)
	return out, nil
}

// newDataKey is a customer's data key made for an append, and its row to store with it.
type newDataKey struct {
	sealer events.Sealer
	row    *eventstore.DataKey
}

// seal seals the personal data of decided payloads of an order of customerID, when the schema
// versions written seal it. placing: a customer who has no data key gets a new one, returned to be
// stored with the append (newKey); otherwise one is made and stored at once.
func (s *Service) seal(ctx context.Context, orderID, customerID string, decided []events.Payload, placing bool) (
	_ []events.Payload, newKey *newDataKey, _ error) {
	var sealer events.Sealer
	out := make([]events.Payload, len(decided))
	for i, p := range decided {
		if events.SealsAt(p, s.WriteVersion) && sealer == nil {
			if s.Keys == nil {
				return nil, nil, errors.New("personal data to seal, and no data keys configured")
			}
			var err error
			if placing {
				var row *eventstore.DataKey
				if sealer, row, err = s.Keys.SealerFor(ctx, customerID); row != nil {
					newKey = &newDataKey{sealer: sealer, row: row}
				}
			} else {
				sealer, err = s.Keys.Sealer(ctx, customerID)
			}
			if err != nil {
				return nil, nil, err
			}
		}
		sealed, err := events.SealAt(p, s.WriteVersion, orderID, sealer)
		if err != nil {
			return nil, nil, err
		}
		out[i] = sealed
	}
	return out, newKey, nil
}

// record is the idempotency record of a command whose answer showed the order at version.
func (s *Service) record(p auth.Principal, idem *Idempotency, status int, version int64) *eventstore.IdempotencyRecord {
	return &eventstore.IdempotencyRecord{Scope: p.IdempotencyScope(), Key: idem.Key, RequestHash: idem.RequestHash,
		Status: status, Version: version, TTL: s.IdempotencyTTL}
}

// replay answers a retried request with its first outcome (done), refuses a reused key, or reports
// that the key is new (not done). Keys are the principal's own: another principal's same key is
// another key. The first outcome is the order folded at the version the first answer showed (its
// personal data null if it was erased since); a record an older release wrote keeps the first answer.
func (s *Service) replay(ctx context.Context, p auth.Principal, idem *Idempotency) (out Outcome, done bool, err error) {
	prev, err := s.Store.Idempotency(ctx, p.IdempotencyScope(), idem.Key)
	if err != nil || prev == nil {
		return Outcome{}, false, err
	}
	if string(prev.RequestHash) != string(idem.RequestHash) {
		return Outcome{}, true, ErrKeyReused
	}
	if prev.Version > 0 {
		o, err := s.readAt(ctx, prev.OrderID, prev.Version)
		if err != nil {
			return Outcome{}, true, fmt.Errorf("idempotency key %q: the first answer: %w", idem.Key, err)
		}
		out = Outcome{Order: o, Replayed: true}
		out.Body, err = json.Marshal(o)
		return out, true, err
	}
	out = Outcome{Body: prev.Response, Replayed: true}
	if err := json.Unmarshal(prev.Response, &out.Order); err != nil {
		return Outcome{}, true, fmt.Errorf("idempotency key %q: stored answer: %w", idem.Key, err)
	}
	return out, true, nil
}

// readAt is the order folded at a version, as a read of that version shows it.
func (s *Service) readAt(ctx context.Context, id string, version int64) (api.Order, error) {
	st, _, err := s.load(ctx, id, version)
	if err != nil {
		return api.Order{}, err
	}
	if st.Version != version {
		return api.Order{}, fmt.Errorf("%w: the order is at version %d; it has no version %d", ErrNotInHistory, st.Version, version)
	}
	return s.view(ctx, st, true)
}

// Execute decides a command on an existing order and stores its events. action is what the command is
// (auth.ChangeOrder, ShipOrder, DeliverOrder): a principal whose role may not do it fails with
// ErrForbidden before anything is read; an order it may not see (Authorize) is not found. pinned > 0 is
// the version the caller saw (If-Match): when the order is elsewhere it fails with ErrStaleVersion and
// never retries. Otherwise a concurrent change is decided again on fresh state up to MaxRetries times. An
// order that does not exist fails with an *order.Error of kind NotFound; one whose history holds an event
// this code cannot read (a newer release wrote it) fails with an *events.UnknownEventError, and nothing is
// decided. With idem, a retry of the same request by the same principal answers the first outcome and
// appends nothing.
func (s *Service) Execute(ctx context.Context, p auth.Principal, id string, pinned int64, md events.Metadata, action auth.Action,
	decide order.Decision, idem *Idempotency) (Outcome, error) {
	if !p.Can(action) {
		return Outcome{}, forbidden(p, strings.ReplaceAll(string(action), "_", " ")+"s")
	}
	if _, err := uuid.Parse(id); err != nil {
		return Outcome{}, order.ErrNotFound()
	}
	if idem != nil {
		if out, done, err := s.replay(ctx, p, idem); done || err != nil {
			return out, err
		}
	}
	var (
		out          Outcome
		before, next order.State
		base         int64
	)
	attempt := func(ctx context.Context) (int64, []eventstore.NewEvent, *eventstore.IdempotencyRecord, error) {
		st, b, err := s.load(ctx, id, 0)
		if err != nil {
			return 0, nil, nil, err
		}
		// Not found, or another customer's: the same answer, also to a stale If-Match.
		if err := Authorize(p, st); err != nil {
			return 0, nil, nil, err
		}
		if pinned > 0 && st.Version != pinned {
			return 0, nil, nil, fmt.Errorf("%w: it is at version %d, not %d", ErrStaleVersion, st.Version, pinned)
		}
		decided, err := decide(st)
		if err != nil {
			return 0, nil, nil, err
		}
		payloads, _, err := s.seal(ctx, id, st.Customer.ID, decided, false)
		if err != nil {
			return 0, nil, nil, err
		}
		evs, err := s.encode(payloads, md)
		if err != nil {
			return 0, nil, nil, err
		}
		// The answer is known before the append, so an idempotency record commits with the events.
		envs := make([]events.Envelope, len(evs))
		for i, e := range evs {
			envs[i] = events.Envelope{OrderID: id, Version: st.Version + int64(i+1), OccurredAt: e.OccurredAt}
		}
		after := evolve(st, envs, payloads)
		if out, err = s.answer(ctx, after); err != nil {
			return 0, nil, nil, err
		}
		var rec *eventstore.IdempotencyRecord
		if idem != nil {
			rec = s.record(p, idem, 200, after.Version)
		}
		before, next, base = st, after, b
		return st.Version, evs, rec, nil
	}
	retries := s.MaxRetries
	if pinned > 0 {
		retries = 0
	}
	_, err := s.Store.UpdateWith(ctx, id, retries, attempt)
	if pinned > 0 && errors.Is(err, eventstore.ErrVersionConflict) {
		err = fmt.Errorf("%w: %w", ErrStaleVersion, err) // the version the client named is no longer current
	}
	if errors.Is(err, eventstore.ErrIdempotencyKeyExists) && idem != nil { // a concurrent request with the same key won
		if rout, done, rerr := s.replay(ctx, p, idem); done || rerr != nil {
			return rout, rerr
		}
	}
	if err != nil {
		return Outcome{}, err
	}
	s.Snapshots.afterCommand(next, before.Version, base)
	return out, nil
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

// answer is the outcome showing st.
func (s *Service) answer(ctx context.Context, st order.State) (Outcome, error) {
	o, err := s.view(ctx, st, false)
	if err != nil {
		return Outcome{}, err
	}
	out := Outcome{Order: o}
	if out.Body, err = json.Marshal(o); err != nil {
		return Outcome{}, err
	}
	return out, nil
}

// view is st in its API shape, its personal data opened with the keys that sealed it. With past, st is
// a point of the order's history, which shows the personal data erased when the order's was erased
// later (even what an event of an older release holds in plain text).
func (s *Service) view(ctx context.Context, st order.State, past bool) (api.Order, error) {
	if past && st.Exists() {
		at, err := s.Store.ErasedAt(ctx, st.ID)
		if err != nil {
			return api.Order{}, err
		}
		if at > st.Version {
			st = st.Redact()
		}
	}
	var o events.Opener
	if ids := st.KeyIDs(); len(ids) > 0 {
		if s.Keys == nil {
			return api.Order{}, errors.New("sealed personal data, and no data keys configured")
		}
		var err error
		if o, err = s.Keys.Opener(ctx, ids); err != nil {
			return api.Order{}, err
		}
	}
	return st.View(o)
}
