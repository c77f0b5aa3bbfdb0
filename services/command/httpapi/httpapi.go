// Package httpapi is the command REST API of orders: it turns HTTP requests into domain commands,
// decides them on the order's folded history and appends the resulting events through the event store.
// Error answers are problem+json; the one table from domain error to status is mapError.
package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/labstack/echo/v4"

	"github.com/orders-oss/orders/internal/eventstore"
	"github.com/orders-oss/orders/internal/httpserver"
	"github.com/orders-oss/orders/internal/order"
	"github.com/orders-oss/orders/internal/problem"
	"github.com/orders-oss/orders/pkg/events"
)

// Store is what the API needs of the event store.
type Store interface {
	Append(ctx context.Context, req eventstore.AppendRequest) ([]events.Envelope, error)
	LoadPage(ctx context.Context, streamID string, afterVersion int64, limit int) ([]events.Envelope, error)
	Update(ctx context.Context, streamID string, retries int, decide eventstore.Decide) (history, appended []events.Envelope, err error)
	UpdateIfVersion(ctx context.Context, streamID string, expected int64, decide eventstore.Decide) (history, appended []events.Envelope, err error)
	Idempotency(ctx context.Context, key string) (*eventstore.IdempotencyRecord, error)
}

// Config wires the API.
type Config struct {
	Store      Store
	Log        *slog.Logger
	BodyLimit  string                          // e.g. "256KB"
	MaxRetries int                             // conflict retries of a command without If-Match
	Ready      func(ctx context.Context) error // for /readyz
	Now        func() time.Time                // occurred_at of new events; time.Now when nil
}

type server struct {
	Config
}

// New returns the API's HTTP handler.
func New(cfg Config) http.Handler {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	s := &server{cfg}
	e := echo.New()
	e.HideBanner, e.HidePort = true, true
	e.HTTPErrorHandler = problem.Handler(cfg.Log, mapError)
	e.Use(httpserver.Common(cfg.Log, cfg.BodyLimit)...)
	httpserver.Health(e, cfg.Ready)

	e.POST("/orders", s.placeOrder)
	e.POST("/orders/:id/items", s.command(s.addItem))
	e.DELETE("/orders/:id/items/:sku", s.command(s.removeItem))
	e.PUT("/orders/:id/shipping-address", s.command(s.changeAddress))
	e.POST("/orders/:id/payment", s.command(s.confirmPayment))
	e.POST("/orders/:id/shipment", s.command(s.ship))
	e.POST("/orders/:id/delivery", s.command(s.deliver))
	e.POST("/orders/:id/cancellation", s.command(s.cancel))
	e.GET("/orders/:id/events", s.listEvents)
	return e
}

// Routes lists the method and path of every route, for the test that keeps the OpenAPI spec honest.
func Routes(h http.Handler) [][2]string {
	var out [][2]string
	for _, r := range h.(*echo.Echo).Routes() {
		out = append(out, [2]string{r.Method, r.Path})
	}
	return out
}

// mapError is the one table from domain and store errors to HTTP answers.
func mapError(err error) *problem.Problem {
	var de *order.Error
	if errors.As(err, &de) {
		status := map[order.Kind]int{order.Invalid: http.StatusUnprocessableEntity, order.RuleViolated: http.StatusConflict,
			order.NotFound: http.StatusNotFound}[de.Kind]
		if status == 0 {
			return nil
		}
		p := problem.New(status, de.Code, de.Message)
		for _, f := range de.Fields {
			p.Errors = append(p.Errors, problem.FieldError{Field: f.Field, Message: f.Message})
		}
		return p
	}
	if errors.Is(err, eventstore.ErrVersionConflict) {
		return problem.New(http.StatusConflict, "concurrent_modification", "the order changed concurrently too many times; read it again and retry")
	}
	if errors.Is(err, errStaleIfMatch) {
		return problem.New(http.StatusPreconditionFailed, "version_mismatch", "the order is not at the version in If-Match; read it again")
	}
	return nil
}

var errStaleIfMatch = errors.New("stale If-Match")

// metadata builds the events' metadata from the request: X-Correlation-ID (or a new one, echoed in the
// answer), the request id as causation id, X-Actor.
func metadata(c echo.Context) (events.Metadata, error) {
	corr := strings.TrimSpace(c.Request().Header.Get("X-Correlation-ID"))
	if len(corr) > 200 {
		return events.Metadata{}, problem.New(http.StatusBadRequest, "invalid_header", "X-Correlation-ID must be at most 200 characters")
	}
	actor := strings.TrimSpace(c.Request().Header.Get("X-Actor"))
	if len(actor) > 200 {
		return events.Metadata{}, problem.New(http.StatusBadRequest, "invalid_header", "X-Actor must be at most 200 characters")
	}
	if corr == "" {
		corr = uuid.Must(uuid.NewV7()).String()
	}
	if actor == "" {
		actor = "anonymous"
	}
	c.Response().Header().Set("X-Correlation-ID", corr)
	return events.Metadata{CorrelationID: corr, CausationID: httpserver.RequestID(c.Request().Context()), Actor: actor}, nil
}

// newEvents encodes decided payloads for the store.
func (s *server) newEvents(payloads []events.Payload, md events.Metadata) ([]eventstore.NewEvent, error) {
	now := s.Now().UTC().Truncate(time.Microsecond) // what Postgres keeps, so answers match the audit trail
	out := make([]eventstore.NewEvent, len(payloads))
	for i, p := range payloads {
		typ, sv, data, err := events.Encode(p)
		if err != nil {
			return nil, err
		}
		out[i] = eventstore.NewEvent{Type: typ, SchemaVersion: sv, Data: data, Metadata: md, OccurredAt: now}
	}
	return out, nil
}

// foldAfter evolves state by the appended envelopes (whose payloads were just decided, so they decode).
func foldAfter(st order.State, appended []events.Envelope) (order.State, error) {
	for _, e := range appended {
		p, err := events.DecodeEnvelope(e)
		if err != nil {
			return st, err
		}
		st = order.Evolve(st, e, p)
	}
	return st, nil
}

type placeOrderBody struct {
	Customer        events.Customer   `json:"customer"`
	ShippingAddress events.Address    `json:"shipping_address"`
	Currency        string            `json:"currency"`
	Items           []events.LineItem `json:"items"`
}

func (s *server) placeOrder(c echo.Context) error {
	var body placeOrderBody
	raw, err := readJSON(c, &body, false)
	if err != nil {
		return err
	}
	md, err := metadata(c)
	if err != nil {
		return err
	}
	ctx := c.Request().Context()
	key := strings.TrimSpace(c.Request().Header.Get("Idempotency-Key"))
	var idem *eventstore.IdempotencyRecord
	if key != "" {
		if len(key) > 200 {
			return problem.New(http.StatusBadRequest, "invalid_header", "Idempotency-Key must be at most 200 characters")
		}
		hash := requestHash(c.Request().Method, c.Request().URL.Path, raw)
		if prev, err := s.Store.Idempotency(ctx, key); err != nil {
			return err
		} else if prev != nil {
			return replay(c, prev, hash)
		}
		idem = &eventstore.IdempotencyRecord{Key: key, RequestHash: hash}
	}
	payloads, err := order.Place(order.PlaceOrder{Customer: body.Customer, ShippingAddress: body.ShippingAddress,
		Currency: body.Currency, Items: body.Items})
	if err != nil {
		return err
	}
	id := uuid.Must(uuid.NewV7()).String()
	evs, err := s.newEvents(payloads, md)
	if err != nil {
		return err
	}
	// The answer is known before the append (the state is a fold of what is about to be stored), so
	// the idempotency record commits with the events.
	st := order.State{}
	for i, p := range payloads {
		st = order.Evolve(st, events.Envelope{OrderID: id, Version: int64(i + 1), OccurredAt: evs[i].OccurredAt}, p)
	}
	view := st.View()
	resp, err := json.Marshal(view)
	if err != nil {
		return err
	}
	if idem != nil {
		idem.OrderID, idem.Status, idem.Response = id, http.StatusCreated, resp
	}
	_, err = s.Store.Append(ctx, eventstore.AppendRequest{StreamID: id, Events: evs, Idempotency: idem})
	if errors.Is(err, eventstore.ErrIdempotencyKeyExists) { // a concurrent request with the same key won
		prev, rerr := s.Store.Idempotency(ctx, key)
		if rerr != nil || prev == nil {
			return errors.Join(err, rerr)
		}
		return replay(c, prev, idem.RequestHash)
	}
	if err != nil {
		return err
	}
	return created(c, id, view.Version, resp)
}

func created(c echo.Context, id string, version int64, body []byte) error {
	c.Response().Header().Set(echo.HeaderLocation, "/orders/"+id)
	c.Response().Header().Set("ETag", etag(version))
	return c.JSONBlob(http.StatusCreated, body)
}

// replay answers a retried request with the first answer, or refuses a reused key.
func replay(c echo.Context, prev *eventstore.IdempotencyRecord, hash []byte) error {
	if string(prev.RequestHash) != string(hash) {
		return problem.New(http.StatusUnprocessableEntity, "idempotency_key_reused",
			"this Idempotency-Key was used with a different request; use a new key for a new order")
	}
	var v struct {
		Version int64 `json:"version"`
	}
	_ = json.Unmarshal(prev.Response, &v)
	c.Response().Header().Set("Idempotent-Replayed", "true")
	return created(c, prev.OrderID, v.Version, prev.Response)
}

// decider reads a command's body and returns the decision to take on the current state.
type decider func(c echo.Context) (func(order.State) ([]events.Payload, error), error)

// command runs a command on an existing order: If-Match pins the version (412 when stale, no retry);
// without it a concurrent change is retried on fresh state up to MaxRetries times, then 409.
func (s *server) command(d decider) echo.HandlerFunc {
	return func(c echo.Context) error {
		decide, err := d(c)
		if err != nil {
			return err
		}
		want, pinned, err := ifMatch(c)
		if err != nil {
			return err
		}
		md, err := metadata(c)
		if err != nil {
			return err
		}
		id := c.Param("id")
		if _, err := uuid.Parse(id); err != nil {
			return &order.Error{Kind: order.NotFound, Code: order.CodeNotFound, Message: "no order with this id"}
		}
		var state order.State
		decideOn := func(history []events.Envelope) ([]eventstore.NewEvent, error) {
			st, err := order.Fold(history)
			if err != nil {
				return nil, err
			}
			state = st
			payloads, err := decide(st)
			if err != nil {
				return nil, err
			}
			return s.newEvents(payloads, md)
		}
		ctx := c.Request().Context()
		var history, appended []events.Envelope
		if pinned {
			history, appended, err = s.Store.UpdateIfVersion(ctx, id, want, decideOn)
			switch {
			case errors.Is(err, eventstore.ErrVersionMismatch) && len(history) == 0:
				err = &order.Error{Kind: order.NotFound, Code: order.CodeNotFound, Message: "no order with this id"}
			case errors.Is(err, eventstore.ErrVersionMismatch), errors.Is(err, eventstore.ErrVersionConflict):
				err = errStaleIfMatch // the version the client named is no longer the current one
			}
		} else {
			_, appended, err = s.Store.Update(ctx, id, s.MaxRetries, decideOn)
		}
		if err != nil {
			return err
		}
		state, err = foldAfter(state, appended)
		if err != nil {
			return err
		}
		c.Response().Header().Set("ETag", etag(state.Version))
		return c.JSON(http.StatusOK, state.View())
	}
}

func (s *server) addItem(c echo.Context) (func(order.State) ([]events.Payload, error), error) {
	var it events.LineItem
	if _, err := readJSON(c, &it, false); err != nil {
		return nil, err
	}
	return func(st order.State) ([]events.Payload, error) { return st.AddItem(it) }, nil
}

func (s *server) removeItem(c echo.Context) (func(order.State) ([]events.Payload, error), error) {
	sku := c.Param("sku")
	return func(st order.State) ([]events.Payload, error) { return st.RemoveItem(sku) }, nil
}

func (s *server) changeAddress(c echo.Context) (func(order.State) ([]events.Payload, error), error) {
	var a events.Address
	if _, err := readJSON(c, &a, false); err != nil {
		return nil, err
	}
	return func(st order.State) ([]events.Payload, error) { return st.ChangeShippingAddress(a) }, nil
}

func (s *server) confirmPayment(c echo.Context) (func(order.State) ([]events.Payload, error), error) {
	var p struct {
		Amount    int64  `json:"amount"`
		Currency  string `json:"currency"`
		Reference string `json:"reference"`
	}
	if _, err := readJSON(c, &p, false); err != nil {
		return nil, err
	}
	return func(st order.State) ([]events.Payload, error) {
		return st.ConfirmPayment(p.Amount, p.Currency, p.Reference)
	}, nil
}

func (s *server) ship(c echo.Context) (func(order.State) ([]events.Payload, error), error) {
	var p struct {
		Carrier        string `json:"carrier"`
		TrackingNumber string `json:"tracking_number"`
	}
	if _, err := readJSON(c, &p, false); err != nil {
		return nil, err
	}
	return func(st order.State) ([]events.Payload, error) { return st.Ship(p.Carrier, p.TrackingNumber) }, nil
}

func (s *server) deliver(c echo.Context) (func(order.State) ([]events.Payload, error), error) {
	var p struct{}
	if _, err := readJSON(c, &p, true); err != nil {
		return nil, err
	}
	return func(st order.State) ([]events.Payload, error) { return st.Deliver() }, nil
}

func (s *server) cancel(c echo.Context) (func(order.State) ([]events.Payload, error), error) {
	var p struct {
		Reason string `json:"reason"`
	}
	if _, err := readJSON(c, &p, false); err != nil {
		return nil, err
	}
	return func(st order.State) ([]events.Payload, error) { return st.Cancel(p.Reason) }, nil
}

type eventsPage struct {
	Events     []events.Envelope `json:"events"`
	NextCursor *string           `json:"next_cursor"`
}

// listEvents is the audit trail. The cursor is the last version of the previous page (opaque to clients).
func (s *server) listEvents(c echo.Context) error {
	limit := 100
	if v := c.QueryParam("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 500 {
			return problem.New(http.StatusBadRequest, "invalid_limit", "limit must be a whole number from 1 to 500")
		}
		limit = n
	}
	var after int64
	if v := c.QueryParam("cursor"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 1 {
			return problem.New(http.StatusBadRequest, "invalid_cursor", "cursor must be a next_cursor value from a previous page")
		}
		after = n
	}
	id := c.Param("id")
	notFound := &order.Error{Kind: order.NotFound, Code: order.CodeNotFound, Message: "no order with this id"}
	if _, err := uuid.Parse(id); err != nil {
		return notFound
	}
	page, err := s.Store.LoadPage(c.Request().Context(), id, after, limit+1)
	if err != nil {
		return err
	}
	if len(page) == 0 && after == 0 {
		return notFound
	}
	out := eventsPage{Events: page}
	if len(page) > limit {
		out.Events = page[:limit]
		next := strconv.FormatInt(page[limit-1].Version, 10)
		out.NextCursor = &next
	}
	if out.Events == nil {
		out.Events = []events.Envelope{}
	}
	return c.JSON(http.StatusOK, out)
}
