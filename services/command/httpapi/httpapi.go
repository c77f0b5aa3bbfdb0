// Package httpapi is the command REST API of orders: it parses HTTP requests into domain commands,
// runs them through the application layer (internal/command) and maps the outcome and errors to
// answers. Error answers are problem+json; the one table from error to status is mapError.
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
	Metrics   *prometheus.Registry            // served at /metrics when set
}

type server struct {
	Config
}

// New returns the API's HTTP handler.
func New(cfg Config) *httpserver.Server {
	s := &server{cfg}
	e := httpserver.New(httpserver.Config{Service: "command", Log: cfg.Log, Ready: cfg.Ready, Errors: mapError, BodyLimit: cfg.BodyLimit,
		Metrics: cfg.Metrics})
	e.POST("/orders", s.placeOrder)
	e.POST("/orders/:id/items", s.command(s.addItem))
	e.DELETE("/orders/:id/items/:sku", s.command(s.removeItem))
	e.PUT("/orders/:id/shipping-address", s.command(s.changeAddress))
	e.POST("/orders/:id/payment", s.command(s.confirmPayment))
	e.POST("/orders/:id/shipment", s.command(s.ship))
	e.POST("/orders/:id/delivery", s.command(s.deliver))
	e.POST("/orders/:id/cancellation", s.command(s.cancel))
	e.GET("/orders/:id", s.getOrder)
	e.GET("/orders/:id/events", s.listEvents)
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
	if errors.Is(err, command.ErrKeyReused) {
		return problem.New(http.StatusUnprocessableEntity, "idempotency_key_reused",
			"this Idempotency-Key was used with a different request; use a new key for a new order")
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
	var idem *command.Idempotency
	if key := strings.TrimSpace(c.Request().Header.Get("Idempotency-Key")); key != "" {
		if len(key) > 200 {
			return problem.New(http.StatusBadRequest, "invalid_header", "Idempotency-Key must be at most 200 characters")
		}
		idem = &command.Idempotency{Key: key, RequestHash: requestHash(c.Request().Method, c.Request().URL.Path, raw)}
	}
	out, err := s.Commands.Place(c.Request().Context(), md, order.PlaceOrder{Customer: body.Customer,
		ShippingAddress: body.ShippingAddress, Currency: body.Currency, Items: body.Items}, idem)
	if err != nil {
		return err
	}
	if out.Replayed {
		c.Response().Header().Set("Idempotent-Replayed", "true")
	}
	c.Response().Header().Set(echo.HeaderLocation, "/orders/"+out.Order.ID)
	c.Response().Header().Set("ETag", etag(out.Order.Version))
	return c.JSONBlob(http.StatusCreated, out.Body)
}

// decider reads a command's body and returns the decision to take on the current state.
type decider func(c echo.Context) (order.Decision, error)

// command runs a command on an existing order: If-Match pins the version (412 when stale, no retry);
// without it a concurrent change is retried on fresh state up to the service's MaxRetries, then 409.
func (s *server) command(d decider) echo.HandlerFunc {
	return func(c echo.Context) error {
		decide, err := d(c)
		if err != nil {
			return err
		}
		pinned, err := ifMatch(c)
		if err != nil {
			return err
		}
		md, err := metadata(c)
		if err != nil {
			return err
		}
		out, err := s.Commands.Execute(c.Request().Context(), c.Param("id"), pinned, md, decide)
		if err != nil {
			return err
		}
		c.Response().Header().Set("ETag", etag(out.Order.Version))
		return c.JSONBlob(http.StatusOK, out.Body)
	}
}

func (s *server) addItem(c echo.Context) (order.Decision, error) {
	var it events.LineItem
	if _, err := readJSON(c, &it, false); err != nil {
		return nil, err
	}
	return func(st order.State) ([]events.Payload, error) { return st.AddItem(it) }, nil
}

func (s *server) removeItem(c echo.Context) (order.Decision, error) {
	sku := c.Param("sku")
	return func(st order.State) ([]events.Payload, error) { return st.RemoveItem(sku) }, nil
}

func (s *server) changeAddress(c echo.Context) (order.Decision, error) {
	var a events.Address
	if _, err := readJSON(c, &a, false); err != nil {
		return nil, err
	}
	return func(st order.State) ([]events.Payload, error) { return st.ChangeShippingAddress(a) }, nil
}

func (s *server) confirmPayment(c echo.Context) (order.Decision, error) {
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

func (s *server) ship(c echo.Context) (order.Decision, error) {
	var p struct {
		Carrier        string `json:"carrier"`
		TrackingNumber string `json:"tracking_number"`
	}
	if _, err := readJSON(c, &p, false); err != nil {
		return nil, err
	}
	return func(st order.State) ([]events.Payload, error) { return st.Ship(p.Carrier, p.TrackingNumber) }, nil
}

func (s *server) deliver(c echo.Context) (order.Decision, error) {
	var p struct{}
	if _, err := readJSON(c, &p, true); err != nil {
		return nil, err
	}
	return func(st order.State) ([]events.Payload, error) { return st.Deliver() }, nil
}

func (s *server) cancel(c echo.Context) (order.Decision, error) {
	var p struct {
		Reason string `json:"reason"`
	}
	if _, err := readJSON(c, &p, false); err != nil {
		return nil, err
	}
	return func(st order.State) ([]events.Payload, error) { return st.Cancel(p.Reason) }, nil
}
