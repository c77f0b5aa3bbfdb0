// Package httpapi is the read API of orders: an order by id and lists from the Postgres read model,
// and search from the OpenSearch index. Every route but the probes needs a bearer token; a customer
// reads, lists and searches its own orders only (another customer's order is not found). Errors are
// problem+json like the command API's; a read model or index that cannot answer gives 503, never a 500
// with its internals.
package httpapi

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/labstack/echo/v4"

	"github.com/orders-oss/orders/internal/auth"
	"github.com/orders-oss/orders/internal/httpserver"
	"github.com/orders-oss/orders/internal/problem"
	"github.com/orders-oss/orders/internal/readmodel"
	"github.com/orders-oss/orders/internal/searchindex"
)

// Searcher is what the API needs of the search index.
type Searcher interface {
	Search(ctx context.Context, req searchindex.SearchRequest) (searchindex.SearchResult, error)
}

// Config wires the API.
type Config struct {
	Search Searcher
	Orders readmodel.Querier // the Postgres read model (a pool)
	Log    *slog.Logger
	Ready  func(ctx context.Context) error
	// MinVersionWait bounds how long GET /orders/{id}?min_version=N waits for the read model to reach
	// version N (QUERY_MIN_VERSION_WAIT, DefaultMinVersionWait unless set); 0 answers at once.
	MinVersionWait time.Duration
	Auth           httpserver.Auth // authenticates every API route
}

// New returns the read API's handler.
func New(cfg Config) *httpserver.Server {
	e := httpserver.New(httpserver.Config{Service: "query", Log: cfg.Log, Ready: cfg.Ready, Errors: mapError, Auth: cfg.Auth})
	s := &server{cfg}
	read := auth.Require(auth.ReadOrders)
	e.GET("/orders/search", s.search, read)
	e.GET("/orders", s.listOrders, read)
	e.GET("/orders/:id", s.getOrder, read)
	return e
}

type server struct{ Config }

func mapError(err error) *problem.Problem {
	switch {
	case errors.Is(err, searchindex.ErrUnavailable):
		return problem.New(http.StatusServiceUnavailable, "search_unavailable", "search cannot answer right now; retry shortly")
	case errors.Is(err, searchindex.ErrBadCursor):
		return problem.New(http.StatusBadRequest, "invalid_cursor", err.Error())
	case errors.Is(err, readmodel.ErrBadCursor):
		return problem.New(http.StatusBadRequest, "invalid_cursor", readmodel.ErrBadCursor.Error())
	case errors.Is(err, readmodel.ErrNotFound):
		return problem.New(http.StatusNotFound, "order_not_found", "no such order")
	case errors.Is(err, readmodel.ErrNoLiveGeneration), errors.Is(err, readmodel.ErrUnavailable):
		return problem.New(http.StatusServiceUnavailable, "read_model_unavailable", "the orders read model cannot answer right now; retry shortly")
	}
	return nil
}

var currencyCode = regexp.MustCompile(`^[A-Z]{3}$`)

var statuses = map[string]bool{"placed": true, "paid": true, "shipped": true, "delivered": true, "cancelled": true}

// params collects query-parameter problems so one answer lists them all.
type params struct {
	c      echo.Context
	errors []problem.FieldError
}

func (p *params) fail(name, msg string) {
	p.errors = append(p.errors, problem.FieldError{Field: name, Message: msg})
}

// dateTime is the RFC 3339 form docs/openapi.yaml allows (upper-case T and Z).
var dateTime = regexp.MustCompile(`^[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\.[0-9]+)?(Z|[+-]([01][0-9]|2[0-3]):[0-5][0-9])$`)

// value returns the parameter's first value and whether it was sent at all (an empty value was).
func (p *params) value(name string) (string, bool) {
	v, ok := p.c.QueryParams()[name]
	if !ok || len(v) == 0 {
		return "", false
	}
	return v[0], true
}

func (p *params) time(name string) *time.Time {
	v, ok := p.value(name)
	if !ok {
		return nil
	}
	t, err := time.Parse(time.RFC3339, v)
	if err != nil || !dateTime.MatchString(v) {
		p.fail(name, "must be an RFC 3339 time like 2026-11-22T10:00:00Z")
		return nil
	}
	return &t
}

func (p *params) int64(name string) *int64 {
	v, ok := p.value(name)
	if !ok {
		return nil
	}
	n, ok := httpserver.ParseInteger(v)
	if !ok || n < 0 {
		p.fail(name, "must be a whole number, 0 or more")
		return nil
	}
	return &n
}

func (p *params) limit(def, most int) int {
	v, ok := p.value("limit")
	if !ok {
		return def
	}
	n, ok := httpserver.ParseInteger(v)
	if !ok || n < 1 || n > int64(most) {
		p.fail("limit", "must be a whole number from 1 to "+strconv.Itoa(most))
		return def
	}
	return int(n)
}

func (p *params) statuses() []string {
	var out []string
	for _, v := range p.c.QueryParams()["status"] {
		for _, s := range strings.Split(v, ",") {
			if s = strings.Trim(s, " "); s == "" {
				continue
			}
			if !statuses[s] {
				p.fail("status", "must be one of placed, paid, shipped, delivered, cancelled")
				continue
			}
			out = append(out, s)
		}
	}
	return out
}

func (p *params) err() error {
	if len(p.errors) == 0 {
		return nil
	}
	pr := problem.New(http.StatusBadRequest, "invalid_parameter", "some query parameters are invalid")
	pr.Errors = p.errors
	return pr
}

func (s *server) search(c echo.Context) error {
	p := &params{c: c}
	req := searchindex.SearchRequest{Q: c.QueryParam("q"), Statuses: p.statuses(), Currency: c.QueryParam("currency"),
		PlacedFrom: p.time("placed_from"), PlacedTo: p.time("placed_to"), TotalMin: p.int64("total_min"),
		TotalMax: p.int64("total_max"), Sort: c.QueryParam("sort"), Limit: p.limit(searchindex.DefaultLimit, searchindex.MaxPageSize), Cursor: c.QueryParam("cursor")}
	if utf8.RuneCountInString(req.Q) > searchindex.MaxQueryLen {
		p.fail("q", "must be at most "+strconv.Itoa(searchindex.MaxQueryLen)+" characters")
	}
	if _, sent := p.value("currency"); sent && !currencyCode.MatchString(req.Currency) {
		p.fail("currency", "must be an ISO 4217 code like EUR")
	}
	if req.Sort != "" && !searchindex.ValidSort(req.Sort) {
		p.fail("sort", "must be placed_at, updated_at or total, with - in front for descending")
	}
	if err := p.err(); err != nil {
		return err
	}
	req.CustomerID = principal(c).Scope() // a customer searches its own orders only
	ctx, cancel := context.WithTimeout(c.Request().Context(), 5*time.Second)
	defer cancel()
	res, err := s.Search.Search(ctx, req)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, res)
}

// principal is who the chassis authenticated (the routes require one).
func principal(c echo.Context) auth.Principal {
	p, _ := auth.FromContext(c.Request().Context())
	return p
}
