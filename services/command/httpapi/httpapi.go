// Package httpapi is the command REST API of orders: it parses HTTP requests into domain commands,
// runs them through the application layer (internal/command) and maps the outcome and errors to
// answers. Every route but the probes needs a bearer token (the chassis authenticates; the application
// layer decides what the principal may do). Error answers are problem+json; the one table from error to
// status is mapError.
package httpapi

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"

	"github.com/google/uuid"
	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/orders-oss/orders/internal/auth"
	"github.com/orders-oss/orders/internal/command"
	"github.com/orders-oss/orders/internal/eventstore"
	"github.com/orders-oss/orders/internal/httpserver"
	"github.com/orders-oss/orders/internal/order"
	"github.com/orders-oss/orders/internal/problem"
	"github.com/orders-oss/orders/pkg/events"
)

// Config wires the API.
type Config struct {
	Commands  *command.Service
	Log       *slog.Logger
	BodyLimit string                          // e.g. "256KB"
	Ready     func(ctx context.Context) error // for /readyz
	Auth      httpserver.Auth                 // authenticates every API route
	Metrics   *prometheus.Registry            // served at /metrics when set
}

type server struct {
	Config
}

// New returns the API's HTTP handler.
func New(cfg Config) *httpserver.Server {
	s := &server{cfg}
	e := httpserver.New(httpserver.Config{Service: "command", Log: cfg.Log, Ready: cfg.Ready, Errors: mapError, BodyLimit: cfg.BodyLimit,
		Auth: cfg.Auth, Metrics: cfg.Metrics})
	e.POST("/orders", s.placeOrder)
	e.POST("/orders/:id/items", s.command(auth.ChangeOrder, s.addItem))
	e.DELETE("/orders/:id/items/:sku", s.command(auth.ChangeOrder, s.removeItem))
	e.PUT("/orders/:id/shipping-address", s.command(auth.ChangeOrder, s.changeAddress))
	e.POST("/orders/:id/payment", s.command(auth.ChangeOrder, s.confirmPayment))
	e.POST("/orders/:id/shipment", s.command(auth.ShipOrder, s.ship))
	e.POST("/orders/:id/delivery", s.command(auth.DeliverOrder, s.deliver))
	e.POST("/orders/:id/cancellation", s.command(auth.ChangeOrder, s.cancel))
	e.GET("/orders/:id", s.getOrder)
	e.GET("/orders/:id/events", s.listEvents)
	e.DELETE("/customers/:customer_id/personal-data", s.erasePersonalData)
	e.GET("/customers/:customer_id/personal-data/erasures/:erasure_id", s.getErasure)
	return e
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
	if errors.Is(err, command.ErrStaleVersion) {
		return problem.New(http.StatusPreconditionFailed, "version_mismatch", "the order is not at the version in If-Match; read it again")
	}
	if errors.Is(err, command.ErrNotInHistory) {
		return problem.New(http.StatusNotFound, "not_found", err.Error())
	}
	var unknown *events.UnknownEventError
	if errors.As(err, &unknown) {
		return schemaUnsupported(unknown)
	}
	if errors.Is(err, command.ErrForbidden) {
		return problem.New(http.StatusForbidden, "forbidden", strings.TrimPrefix(err.Error(), command.ErrForbidden.Error()+": "))
	}
	if errors.Is(err, command.ErrNoErasure) {
		return problem.New(http.StatusNotFound, "erasure_not_found", "no such erasure request of this customer")
	}
	if errors.Is(err, command.ErrBadCustomerID) {
		return problem.New(http.StatusBadRequest, "invalid_customer_id", "a customer id is 1 to 200 characters, not only white space, without control characters")
	}
	if errors.Is(err, command.ErrKeyReused) {
		return problem.New(http.StatusUnprocessableEntity, "idempotency_key_reused",
			"this Idempotency-Key was used with a different request; use a new key for a new request")
	}
	return nil
}

// RetryAfter is the Retry-After of a 503 event_schema_unsupported: about the time a rolling upgrade
// takes to replace a replica.
const RetryAfter = "5"

// schemaUnsupported is the answer of a replica whose code cannot read an event of the order, written by
// a newer release during a rolling upgrade: retryable (an upgraded replica can read it), and nothing
// was decided on a misread state.
func schemaUnsupported(e *events.UnknownEventError) *problem.Problem {
	what := fmt.Sprintf("an event of type %s, which this replica does not know", e.Type)
	if e.KnownVersion > 0 {
		what = fmt.Sprintf("a %s event of schema version %d; this replica reads up to version %d", e.Type, e.SchemaVersion, e.KnownVersion)
	}
	p := problem.New(http.StatusServiceUnavailable, "event_schema_unsupported",
		"the order's history holds "+what+" (written by a newer release): nothing was done; retry shortly, on an upgraded replica")
	p.Headers = map[string]string{"Retry-After": RetryAfter}
	return p
}

// principal is who the chassis authenticated.
func principal(c echo.Context) (auth.Principal, error) {
	p, ok := auth.FromContext(c.Request().Context())
	if !ok {
		return auth.Principal{}, problem.New(http.StatusUnauthorized, "unauthenticated", "this request needs a bearer token")
	}
	return p, nil
}

// metadata builds the events' metadata from the request: X-Correlation-ID (or a new one, echoed in the
// answer), the request id as causation id, and the authenticated principal as the actor (its subject
// and role; what a client says in X-Actor is not read).
func metadata(c echo.Context, p auth.Principal) (events.Metadata, error) {
	corr := strings.TrimSpace(c.Request().Header.Get("X-Correlation-ID"))
	if len(corr) > 200 || strings.ContainsFunc(corr, func(r rune) bool { return r < 0x20 || r > 0x7e }) {
		return events.Metadata{}, problem.New(http.StatusBadRequest, "invalid_header", "X-Correlation-ID must be at most 200 printable ASCII characters")
	}
	if corr == "" {
		corr = uuid.Must(uuid.NewV7()).String()
	}
	c.Response().Header().Set("X-Correlation-ID", corr)
	return events.Metadata{CorrelationID: corr, CausationID: httpserver.RequestID(c.Request().Context()), Actor: p.Subject,
		ActorRole: string(p.Role)}, nil
}

// idempotency reads Idempotency-Key: a retry must repeat the method, path, If-Match and body.
func idempotency(c echo.Context, body []byte) (*command.Idempotency, error) {
	key := c.Request().Header.Get("Idempotency-Key")
	if key == "" {
		return nil, nil
	}
	if !validKey(key) {
		return nil, problem.New(http.StatusBadRequest, "invalid_header", "Idempotency-Key must be 1 to 200 visible ASCII characters")
	}
	req := c.Request()
	return &command.Idempotency{Key: key, RequestHash: requestHash(req.Method, req.URL.Path, req.Header.Get("If-Match"), body)}, nil
}

type customerBody struct {
	ID    string `json:"id"`
	Name  string `json:"name"`
	Email string `json:"email"`
}

type placeOrderBody struct {
	Customer        customerBody      `json:"customer"`
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
	p, err := principal(c)
	if err != nil {
		return err
	}
	md, idem, err := headers(c, p, raw)
	if err != nil {
		return err
	}
	out, err := s.Commands.Place(c.Request().Context(), p, md, order.PlaceOrder{Customer: order.Customer(body.Customer),
		ShippingAddress: body.ShippingAddress, Currency: body.Currency, Items: body.Items}, idem)
	if err != nil {
		return err
	}
	c.Response().Header().Set(echo.HeaderLocation, "/orders/"+out.Order.ID)
	return reply(c, http.StatusCreated, out)
}

// headers reads what a command takes from the request's headers: its events' metadata and its
// Idempotency-Key (body is the raw body, for the idempotency hash).
func headers(c echo.Context, p auth.Principal, body []byte) (events.Metadata, *command.Idempotency, error) {
	md, err := metadata(c, p)
	if err != nil {
		return events.Metadata{}, nil, err
	}
	idem, err := idempotency(c, body)
	return md, idem, err
}

// reply answers a command's outcome: its body, its version as ETag, and whether it was replayed.
func reply(c echo.Context, status int, out command.Outcome) error {
	if out.Replayed {
		c.Response().Header().Set("Idempotent-Replayed", "true")
	}
	c.Response().Header().Set("ETag", httpserver.ETag(out.Order.Version))
	return c.JSONBlob(status, out.Body)
}

// decider reads a command's body and returns the decision to take on the current state, and the raw
// body (for the idempotency hash).
type decider func(c echo.Context) (order.Decision, []byte, error)

// command runs a command on an existing order: If-Match pins the version (412 when stale, no retry);
// without it a concurrent change is retried on fresh state up to the service's MaxRetries, then 409.
// action is what the principal's role must allow (403 otherwise).
func (s *server) command(action auth.Action, d decider) echo.HandlerFunc {
	return func(c echo.Context) error {
		p, err := principal(c)
		if err != nil {
			return err
		}
		decide, raw, err := d(c)
		if err != nil {
			return err
		}
		pinned, err := ifMatch(c)
		if err != nil {
			return err
		}
		md, idem, err := headers(c, p, raw)
		if err != nil {
			return err
		}
		out, err := s.Commands.Execute(c.Request().Context(), p, c.Param("id"), pinned, md, action, decide, idem)
		if err != nil {
			return err
		}
		return reply(c, http.StatusOK, out)
	}
}

func (s *server) addItem(c echo.Context) (order.Decision, []byte, error) {
	var it events.LineItem
	raw, err := readJSON(c, &it, false)
	if err != nil {
		return nil, nil, err
	}
	return func(st order.State) ([]events.Payload, error) { return st.AddItem(it) }, raw, nil
}

func (s *server) removeItem(c echo.Context) (order.Decision, []byte, error) {
	sku := c.Param("sku")
	return func(st order.State) ([]events.Payload, error) { return st.RemoveItem(sku) }, nil, nil
}

func (s *server) changeAddress(c echo.Context) (order.Decision, []byte, error) {
	var a events.Address
	raw, err := readJSON(c, &a, false)
	if err != nil {
		return nil, nil, err
	}
	return func(st order.State) ([]events.Payload, error) { return st.ChangeShippingAddress(a) }, raw, nil
}

func (s *server) confirmPayment(c echo.Context) (order.Decision, []byte, error) {
	var p struct {
		Amount    int64  `json:"amount"`
		Currency  string `json:"currency"`
		Reference string `json:"reference"`
	}
	raw, err := readJSON(c, &p, false)
	if err != nil {
		return nil, nil, err
	}
	return func(st order.State) ([]events.Payload, error) {
		return st.ConfirmPayment(p.Amount, p.Currency, p.Reference)
	}, raw, nil
}

func (s *server) ship(c echo.Context) (order.Decision, []byte, error) {
	var p struct {
		Carrier        string `json:"carrier"`
		TrackingNumber string `json:"tracking_number"`
	}
	raw, err := readJSON(c, &p, false)
	if err != nil {
		return nil, nil, err
	}
	return func(st order.State) ([]events.Payload, error) { return st.Ship(p.Carrier, p.TrackingNumber) }, raw, nil
}

func (s *server) deliver(c echo.Context) (order.Decision, []byte, error) {
	var p struct{}
	raw, err := readJSON(c, &p, true)
	if err != nil {
		return nil, nil, err
	}
	return func(st order.State) ([]events.Payload, error) { return st.Deliver() }, raw, nil
}

func (s *server) cancel(c echo.Context) (order.Decision, []byte, error) {
	var p struct {
		Reason string `json:"reason"`
	}
	raw, err := readJSON(c, &p, false)
	if err != nil {
		return nil, nil, err
	}
	return func(st order.State) ([]events.Payload, error) { return st.Cancel(p.Reason) }, raw, nil
}
