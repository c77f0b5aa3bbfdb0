package httpapi

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
	"github.com/labstack/echo/v4"

	"github.com/orders-oss/orders/internal/auth"
	"github.com/orders-oss/orders/internal/httpserver"
	"github.com/orders-oss/orders/internal/problem"
	"github.com/orders-oss/orders/internal/readmodel"
	"github.com/orders-oss/orders/pkg/api"
)

// DefaultMinVersionWait is how long GET /orders/{id}?min_version=N waits by default.
const DefaultMinVersionWait = 3 * time.Second

// The row is read again this often while a min_version read waits: first after minVersionPoll, then
// every 2*minVersionPoll (the projector usually lands a write within tens of milliseconds).
const minVersionPoll = 25 * time.Millisecond

// queryTimeout bounds one read of the read model.
const queryTimeout = 5 * time.Second

// StaleHeader is set ("true") on an answer to min_version=N when the read model had not reached N
// when the wait ended: the body is the order as the read model holds it, older than N.
const StaleHeader = "X-Read-Model-Stale"

// getOrder answers GET /orders/{id}: the order's doc as the read model holds it, ETag its version.
// With min_version=N it waits (at most MinVersionWait) until the read model holds version N or later
// (read-your-writes after a command that answered ETag "N").
func (s *server) getOrder(c echo.Context) error {
	// Time travel reads the event store: the command API answers it; this read model holds no history.
	p := &params{c: c}
	for _, name := range []string{"version", "as_of"} {
		if c.QueryParams().Has(name) {
			p.fail(name, "time travel is answered by the command API (GET /orders/{id} on port 8080), which reads the event store; the query API serves the read model as it is now")
		}
	}
	if len(p.errors) > 0 {
		// A rule a schema cannot state (one operation describes both APIs; docs/openapi.yaml says it).
		pr := problem.New(http.StatusBadRequest, "not_supported_here", "time travel is answered by the command API, which reads the event store")
		pr.Errors = p.errors
		return pr
	}
	var minVersion int64
	if v, ok := p.value("min_version"); ok {
		n, ok := httpserver.ParseInteger(v)
		if !ok || n < 1 {
			p.fail("min_version", "must be a whole number, 1 or more (the version from a command's ETag)")
			return p.err()
		}
		minVersion = n
	}
	id := c.Param("id")
	if _, err := uuid.Parse(id); err != nil {
		// Like the command API: an id that cannot exist is an unknown order.
		return problem.New(http.StatusNotFound, "order_not_found", "no such order")
	}
	ctx, cancel := context.WithTimeout(c.Request().Context(), s.MinVersionWait+queryTimeout)
	defer cancel()
	who := principal(c)
	o, err := s.get(ctx, who, id)
	if minVersion > 0 && (err == nil && o.Version < minVersion || errors.Is(err, readmodel.ErrNotFound)) {
		o, err = s.waitForVersion(ctx, who, id, minVersion, o, err)
		if errors.Is(err, readmodel.ErrNotFound) {
			return problem.Newf(http.StatusNotFound, "order_not_found",
				"the read model has not reached this order yet (waited %s for version %d); retry shortly", s.MinVersionWait, minVersion)
		}
	}
	if err != nil {
		return err
	}
	tag := httpserver.ETag(o.Version)
	h := c.Response().Header()
	h.Set("ETag", tag)
	if o.Version < minVersion {
		h.Set(StaleHeader, "true")
	}
	if httpserver.NoneMatch(c.Request().Header.Get("If-None-Match"), tag) {
		return c.NoContent(http.StatusNotModified)
	}
	return c.JSON(http.StatusOK, o)
}

// waitForVersion reads the order again until it reaches version want or MinVersionWait has passed
// (or the client went away), and returns the last read (o, err is the first one): an order below
// want, or ErrNotFound, when the wait ended first.
func (s *server) waitForVersion(ctx context.Context, who auth.Principal, id string, want int64, o api.Order, err error) (api.Order, error) {
	deadline := time.Now().Add(s.MinVersionWait)
	timer := time.NewTimer(minVersionPoll)
	defer timer.Stop()
	for {
		if time.Until(deadline) <= 0 {
			return o, err
		}
		select {
		case <-ctx.Done():
			return o, err
		case <-timer.C:
		}
		o, err = s.get(ctx, who, id)
		if err != nil && !errors.Is(err, readmodel.ErrNotFound) || err == nil && o.Version >= want {
			return o, err
		}
		timer.Reset(min(2*minVersionPoll, max(time.Until(deadline), 0)))
	}
}

// get reads an order the principal may see: another customer's order is not found, exactly as one
// that does not exist (the same answer, the same wait for min_version).
func (s *server) get(ctx context.Context, who auth.Principal, id string) (api.Order, error) {
	o, err := readmodel.Get(ctx, s.Orders, id)
	if err == nil && !who.Sees(o.Customer.ID) {
		return api.Order{}, readmodel.ErrNotFound
	}
	return o, err
}

// listOrders answers GET /orders: a page of orders from the read model, filtered and sorted, with the
// cursor of the next page when there is one.
func (s *server) listOrders(c echo.Context) error {
	p := &params{c: c}
	req := readmodel.ListRequest{Statuses: p.statuses(), CustomerID: c.QueryParam("customer_id"),
		PlacedFrom: p.time("placed_from"), PlacedTo: p.time("placed_to"), Sort: c.QueryParam("sort"),
		Limit: p.limit(readmodel.DefaultListLimit, readmodel.MaxListLimit), Cursor: c.QueryParam("cursor")}
	if utf8.RuneCountInString(req.CustomerID) > maxCustomerID {
		p.fail("customer_id", "must be at most "+strconv.Itoa(maxCustomerID)+" characters")
	}
	if req.Sort != "" && !readmodel.ValidSort(req.Sort) {
		p.fail("sort", "must be placed_at, updated_at or total, with - in front for descending")
	}
	if err := p.err(); err != nil {
		return err
	}
	// A customer lists its own orders only: asked for another customer's, the list is empty.
	if scope := principal(c).Scope(); scope != "" {
		if req.CustomerID != "" && req.CustomerID != scope {
			return c.JSON(http.StatusOK, readmodel.ListResult{Items: []api.Order{}})
		}
		req.CustomerID = scope
	}
	ctx, cancel := context.WithTimeout(c.Request().Context(), queryTimeout)
	defer cancel()
	res, err := readmodel.List(ctx, s.Orders, req)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, res)
}

// maxCustomerID is the longest customer id the command API accepts.
const maxCustomerID = 200
