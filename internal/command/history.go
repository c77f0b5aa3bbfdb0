package command

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"

	"github.com/orders-oss/orders/internal/auth"
	"github.com/orders-oss/orders/internal/eventstore"
	"github.com/orders-oss/orders/internal/order"
	"github.com/orders-oss/orders/pkg/api"
	"github.com/orders-oss/orders/pkg/events"
)

// At is the point of an order's history a read wants. The zero At is now. Version > 0 is the order
// right after its event of that version. A non-zero Time is the order as the system knew it then: up to
// its last event recorded at or before Time. recorded_at is the store's own clock, set when the event
// was appended, so a read as of a time gives what a read at that time gave; occurred_at is the
// command's claim of when the fact happened, and may lag or lead the moment the store knew it.
type At struct {
	Version int64
	Time    time.Time
}

// ErrNotInHistory: the order exists, but not at the point asked (a time before it was placed, a version
// beyond its current one). The error wrapping it says what the order has.
var ErrNotInHistory = errors.New("the order has no such point in its history")

// Order reads an order from the event store, strongly consistent with every command that answered
// before: now, at a version or as of a time (at). An unknown order, or one the principal may not see
// (Authorize), fails with an *order.Error of kind NotFound; a point the order had not reached, with
// ErrNotInHistory; an event this code cannot read (a newer release wrote it), with an
// *events.UnknownEventError.
func (s *Service) Order(ctx context.Context, p auth.Principal, id string, at At) (api.Order, error) {
	if !p.Can(auth.ReadOrders) {
		return api.Order{}, forbidden(p, "read orders")
	}
	if _, err := uuid.Parse(id); err != nil {
		return api.Order{}, order.ErrNotFound()
	}
	if err := s.visible(ctx, p, id); err != nil {
		return api.Order{}, err
	}
	if at.Version < 0 || at.Version > 0 && !at.Time.IsZero() {
		return api.Order{}, fmt.Errorf("read order %s: at %+v: a version of 1 or more, or a time, not both", id, at)
	}
	to := at.Version
	if !at.Time.IsZero() {
		v, err := s.Store.VersionAt(ctx, id, at.Time)
		if err != nil {
			return api.Order{}, err
		}
		if v == 0 {
			return api.Order{}, s.notYet(ctx, id, at.Time)
		}
		to = v
	}
	st, base, err := s.load(ctx, id, to)
	if err != nil {
		return api.Order{}, err
	}
	if err := Authorize(p, st); err != nil {
		return api.Order{}, err
	}
	switch {
	case st.Version < to:
		return api.Order{}, fmt.Errorf("%w: the order is at version %d; it has no version %d", ErrNotInHistory, st.Version, to)
	case to == 0:
		s.Snapshots.afterLoad(st, base)
	}
	return s.view(ctx, st, to > 0)
}

// notYet is the error of a read as of a time before the order's first event: NotFound when the order
// has no events at all.
func (s *Service) notYet(ctx context.Context, id string, t time.Time) error {
	first, err := s.Store.Read(ctx, id, eventstore.Range{Limit: 1})
	if err != nil {
		return err
	}
	if len(first) == 0 {
		return order.ErrNotFound()
	}
	return fmt.Errorf("%w: the order did not exist yet at %s; its first event was recorded at %s", ErrNotInHistory,
		t.UTC().Format(time.RFC3339Nano), first[0].RecordedAt.Format(time.RFC3339Nano))
}

// load folds the order up to version to (0: all its events) from its latest usable snapshot at or below
// to, and returns the state and the version of the snapshot it started from (0: none). An unusable
// snapshot is ignored and a fresh one of the same version is taken from the fold. A load that meets an
// event it cannot decode fails: nothing is ever decided on a state misread.
func (s *Service) load(ctx context.Context, id string, to int64) (order.State, int64, error) {
	var st order.State
	var base int64
	var stale *eventstore.Snapshot
	if s.Snapshots != nil {
		snap, err := s.Store.LatestSnapshot(ctx, id, to)
		if err != nil {
			return order.State{}, 0, err
		}
		if snap != nil {
			if got, ok := s.Snapshots.use(snap); ok {
				st, base = got, snap.Version
			} else {
				stale = snap
			}
		}
	}
	evs, err := s.Store.ReadForFold(ctx, id, base, to)
	if err != nil {
		return order.State{}, 0, err
	}
	for _, e := range evs {
		p, err := events.DecodeEnvelope(e)
		if err != nil {
			return order.State{}, 0, fmt.Errorf("fold order %s at version %d: %w", id, e.Version, err)
		}
		st = order.Evolve(st, e, p)
		if stale != nil && e.Version == stale.Version {
			s.Snapshots.offer(st)
		}
	}
	return st, base, nil
}

// Events returns a page of the order's audit trail, each event as stored (its schema version and data
// as written, never upcast): the events in r (after a version, up to a version, recorded until a time),
// at most r.Limit of them, in version order, and whether more follow. Personal data is shown opened
// (events.ShowData): sealed fields in plain text, or null when their key is gone, and every personal
// field of the events before the order's erasure null. An order without any event, or one the principal
// may not see, fails with an *order.Error of kind NotFound; a known order's empty selection is an empty
// page.
func (s *Service) Events(ctx context.Context, p auth.Principal, id string, r eventstore.Range) ([]events.Envelope, bool, error) {
	if !p.Can(auth.ReadOrders) {
		return nil, false, forbidden(p, "read orders")
	}
	if err := s.visible(ctx, p, id); err != nil {
		return nil, false, err
	}
	limit := r.Limit
	r.Limit = limit + 1
	page, err := s.Store.Read(ctx, id, r)
	if err != nil {
		return nil, false, err
	}
	if len(page) == 0 && r.After == 0 {
		first, err := s.Store.Read(ctx, id, eventstore.Range{Limit: 1})
		if err != nil {
			return nil, false, err
		}
		if len(first) == 0 {
			return nil, false, order.ErrNotFound()
		}
	}
	more := len(page) > limit
	if more {
		page = page[:limit]
	}
	erasedAt, err := s.Store.ErasedAt(ctx, id)
	if err != nil {
		return nil, false, err
	}
	if err := s.show(ctx, id, erasedAt, page); err != nil {
		return nil, false, err
	}
	return page, more, nil
}

// show opens the personal data of a page of the audit trail in place (events.ShowData); erasedAt is
// the version of the order's erasure (Store.ErasedAt).
func (s *Service) show(ctx context.Context, id string, erasedAt int64, page []events.Envelope) error {
	var ids []string
	for _, e := range page {
		if e.Version >= erasedAt {
			sealed, err := events.SealedIn(e.Type, e.SchemaVersion, e.Data)
			if err != nil {
				continue // shown as stored: the audit trail shows what this release cannot read too
			}
			for _, v := range sealed {
				ids = append(ids, v.KeyID)
			}
		}
	}
	var o events.Opener
	if len(ids) > 0 {
		if s.Keys == nil {
			return errors.New("sealed personal data, and no data keys configured")
		}
		var err error
		if o, err = s.Keys.Opener(ctx, ids); err != nil {
			return err
		}
	}
	for i, e := range page {
		data, err := events.ShowData(e.Type, e.SchemaVersion, e.Data, id, o, e.Version < erasedAt)
		var unknown *events.UnknownEventError
		switch {
		case errors.As(err, &unknown), errors.Is(err, events.ErrMalformedPayload):
			continue // as stored
		case err != nil:
			return err
		}
		page[i].Data = data
	}
	return nil
}

// visible refuses, as not found, an order a principal limited to one customer's orders may not see,
// before anything else about it is read or said (a customer asking for another customer's order at a
// time before it existed must not learn that it exists). The customer never changes: the order's first
// event says whose it is. Staff and admin see every order.
func (s *Service) visible(ctx context.Context, p auth.Principal, id string) error {
	if p.Scope() == "" {
		return nil
	}
	first, err := s.Store.Read(ctx, id, eventstore.Range{Limit: 1})
	if err != nil {
		return err
	}
	return owns(p, first)
}

// owns is visible's rule on the order's history, or its start (from its first event).
func owns(p auth.Principal, history []events.Envelope) error {
	if p.Scope() == "" {
		return nil
	}
	st, err := order.Fold(history[:min(len(history), 1)])
	if err != nil {
		return err
	}
	return Authorize(p, st)
}
