package command

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/orders-oss/orders/internal/auth"
	"github.com/orders-oss/orders/internal/eventstore"
	"github.com/orders-oss/orders/internal/order"
	"github.com/orders-oss/orders/pkg/events"
)

// Erasing a customer's personal data (docs/privacy.md). A request deletes the customer's data keys and
// records itself, in one transaction, before it answers: from then on what those keys sealed opens
// nowhere, in any copy. The rest follows in the background (RunErasures), in every command replica, at
// least once and idempotently: each of the customer's orders that still holds personal data the request
// covers gets a PersonalDataErased event (which the projectors apply to the read models), and the
// order's snapshots and the idempotency records that kept a first answer are deleted. The request is
// completed once every order is done and the keys' deletion is older than the data keys' cache TTL
// (no replica opens them any more); a last pass then finds the orders that were appended with a
// deleted key at the moment of the request.

// ErasureStore is what erasure needs of the event store (an *eventstore.Store).
type ErasureStore interface {
	RequestErasure(ctx context.Context, customerID, by, role string, erase eventstore.KeyEraser) (eventstore.Erasure, bool, error)
	Erasure(ctx context.Context, id string) (eventstore.Erasure, error)
	OpenErasures(ctx context.Context) ([]eventstore.Erasure, error)
	ErasureProgress(ctx context.Context, id string, orders, erased int, complete bool) error
	CustomerOrders(ctx context.Context, customerID string) ([]string, error)
	ForgetOrders(ctx context.Context, orderIDs []string) error
}

// ErrNoErasure: no such erasure request of that customer.
var ErrNoErasure = errors.New("no such erasure of this customer")

// ErrBadCustomerID: the customer id is not one (1 to 200 characters, no control character).
var ErrBadCustomerID = errors.New("not a customer id")

// Erasure is the state of an erasure request (GET /customers/{customer_id}/personal-data/erasures/{id}).
type Erasure struct {
	ID         string `json:"erasure_id"`
	CustomerID string `json:"customer_id"`
	// Status is in_progress or completed.
	Status      string    `json:"status"`
	RequestedBy string    `json:"requested_by"`
	RequestedAt time.Time `json:"requested_at"`
	// KeysDeleted is how many data keys the request deleted.
	KeysDeleted int `json:"keys_deleted"`
	// Orders is how many of the customer's orders were found so far; OrdersDone how many of them hold no
	// personal data the request covers any more.
	Orders      int        `json:"orders"`
	OrdersDone  int        `json:"orders_done"`
	CompletedAt *time.Time `json:"completed_at"`
}

func erasureOf(e eventstore.Erasure) Erasure {
	out := Erasure{ID: e.ID, CustomerID: e.CustomerID, Status: "in_progress", RequestedBy: e.RequestedBy, RequestedAt: e.RequestedAt,
		KeysDeleted: len(e.ErasedKeys), Orders: e.Orders, OrdersDone: e.OrdersErased}
	if !e.CompletedAt.IsZero() {
		out.Status = "completed"
		at := e.CompletedAt
		out.CompletedAt = &at
	}
	return out
}

// RequestErasure asks for the erasure of a customer's personal data (staff and admin only): the
// customer's data keys are deleted now, the rest follows (RunErasures). A request while one of the same
// customer is in progress returns that one.
func (s *Service) RequestErasure(ctx context.Context, p auth.Principal, customerID string) (Erasure, error) {
	if !p.Can(auth.ErasePersonalData) {
		return Erasure{}, forbidden(p, "erase personal data")
	}
	if !order.ValidCustomerID(customerID) {
		return Erasure{}, ErrBadCustomerID
	}
	if s.EraseKeys == nil {
		return Erasure{}, errors.New("erase personal data: no key eraser configured")
	}
	e, _, err := s.Store.RequestErasure(ctx, customerID, p.Subject, string(p.Role), s.EraseKeys)
	if err != nil {
		return Erasure{}, err
	}
	s.wakeErasures()
	return erasureOf(e), nil
}

// ErasureStatus returns an erasure request of the customer (staff and admin only).
func (s *Service) ErasureStatus(ctx context.Context, p auth.Principal, customerID, erasureID string) (Erasure, error) {
	if !p.Can(auth.ErasePersonalData) {
		return Erasure{}, forbidden(p, "erase personal data")
	}
	e, err := s.Store.Erasure(ctx, erasureID)
	if errors.Is(err, eventstore.ErrNoErasure) || err == nil && e.CustomerID != customerID {
		return Erasure{}, ErrNoErasure
	}
	if err != nil {
		return Erasure{}, err
	}
	return erasureOf(e), nil
}

func (s *Service) wakeErasures() {
	select {
	case s.erasureWake() <- struct{}{}:
	default:
	}
}

func (s *Service) erasureWake() chan struct{} {
	s.wakeOnce.Do(func() { s.wake = make(chan struct{}, 1) })
	return s.wake
}

// RunErasures carries the erasure requests in progress forward until ctx ends: at once after a request,
// and every poll (other replicas' requests, and the ones waiting for the key cache to expire). Failures
// are logged and tried again.
func (s *Service) RunErasures(ctx context.Context, poll time.Duration, log *slog.Logger) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	t := time.NewTicker(poll)
	defer t.Stop()
	for {
		open, err := s.Store.OpenErasures(ctx)
		if err != nil && ctx.Err() == nil {
			log.Warn("reading the erasures in progress failed; retrying", "error", err.Error())
		}
		for _, e := range open {
			if err := s.ContinueErasure(ctx, e); err != nil && ctx.Err() == nil {
				log.Warn("an erasure could not finish yet; retrying", "erasure", e.ID, "error", err.Error())
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-s.erasureWake():
		}
	}
}

// ContinueErasure takes one pass of an erasure request: every order of the customer that still holds
// personal data the request covers gets its PersonalDataErased event, then the orders' snapshots and
// old idempotency answers go, and the progress is recorded (completed when nothing is left and the
// deleted keys are out of every replica's cache).
func (s *Service) ContinueErasure(ctx context.Context, e eventstore.Erasure) error {
	ids, err := s.Store.CustomerOrders(ctx, e.CustomerID)
	if err != nil {
		return err
	}
	md := events.Metadata{CorrelationID: e.ID, CausationID: e.ID, Actor: e.RequestedBy, ActorRole: e.RequestedRole}
	done := 0
	var errs []error
	for _, id := range ids {
		_, err := s.Store.UpdateWith(ctx, id, max(s.MaxRetries, 10), func(ctx context.Context) (int64, []eventstore.NewEvent, *eventstore.IdempotencyRecord, error) {
			st, _, err := s.load(ctx, id, 0)
			if err != nil {
				return 0, nil, nil, err
			}
			decided, err := st.ErasePersonalData(e.ID, e.RequestedAt, e.ErasedKeys)
			if err != nil || len(decided) == 0 {
				return 0, nil, nil, err
			}
			evs, err := s.encode(decided, md)
			return st.Version, evs, nil, err
		})
		var de *order.Error
		if err != nil && !(errors.As(err, &de) && de.Kind == order.NotFound) {
			errs = append(errs, fmt.Errorf("order %s: %w", id, err))
			continue
		}
		done++
	}
	if err := s.Store.ForgetOrders(ctx, ids); err != nil {
		errs = append(errs, err)
		done = 0
	}
	settled := time.Since(e.RequestedAt) >= s.KeyCacheTTL
	complete := len(errs) == 0 && done == len(ids) && settled
	if err := s.Store.ErasureProgress(ctx, e.ID, len(ids), done, complete); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}
