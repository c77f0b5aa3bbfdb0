package command

import (
	"context"
	"errors"
	"maps"
	"slices"

	"github.com/orders-oss/orders/internal/auth"
	"github.com/orders-oss/orders/internal/eventstore"
	"github.com/orders-oss/orders/internal/order"
	"github.com/orders-oss/orders/pkg/api"
	"github.com/orders-oss/orders/pkg/events"
)

// Step is one event of an order's timeline: the event as the audit trail shows it (Events), and the
// order right after it as time travel shows it (Order at its version). Err is set when this release
// cannot read the event; After is then the order as it was before it.
type Step struct {
	Event events.Envelope
	After api.Order
	Err   error
}

// Timeline returns an order's whole history, each event with the order right after it, for a reader
// that shows what each event changed (the console). Personal data is shown as Events and Order show it:
// opened with the keys that sealed it, and erased in every step before the order's erasure too. An
// order the principal may not see fails as an unknown one (an *order.Error of kind NotFound).
func (s *Service) Timeline(ctx context.Context, p auth.Principal, id string) ([]Step, error) {
	if !p.Can(auth.ReadOrders) {
		return nil, forbidden(p, "read orders")
	}
	stored, err := s.Store.Read(ctx, id, eventstore.Range{})
	if err != nil {
		return nil, err
	}
	// visible, on the history just read: nothing about another customer's order is said.
	if err := owns(p, stored); err != nil {
		return nil, err
	}
	if len(stored) == 0 {
		return nil, order.ErrNotFound()
	}
	erasedAt, err := s.Store.ErasedAt(ctx, id)
	if err != nil {
		return nil, err
	}
	steps := make([]Step, len(stored))
	states := make([]order.State, len(stored))
	keyIDs := map[string]bool{}
	var st order.State
	for i, e := range stored {
		if pl, err := events.DecodeEnvelope(e); err != nil {
			steps[i].Err = err
		} else {
			st = order.Evolve(st, e, pl)
		}
		states[i] = st
		if st.Exists() && erasedAt > st.Version {
			// A point before the erasure shows the personal data erased, whatever its events hold.
			states[i] = st.Redact()
		}
		for _, k := range states[i].KeyIDs() {
			keyIDs[k] = true
		}
	}
	var o events.Opener
	if len(keyIDs) > 0 {
		if s.Keys == nil {
			return nil, errors.New("sealed personal data, and no data keys configured")
		}
		if o, err = s.Keys.Opener(ctx, slices.Sorted(maps.Keys(keyIDs))); err != nil {
			return nil, err
		}
	}
	shown := slices.Clone(stored)
	if err := s.show(ctx, id, erasedAt, shown); err != nil {
		return nil, err
	}
	for i := range steps {
		steps[i].Event = shown[i]
		if !states[i].Exists() {
			continue
		}
		if steps[i].After, err = states[i].View(o); err != nil {
			return nil, err
		}
	}
	return steps, nil
}
