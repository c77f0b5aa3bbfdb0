package httpapi

import (
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/orders-oss/orders/internal/command"
	"github.com/orders-oss/orders/internal/eventstore"
	"github.com/orders-oss/orders/internal/httpserver"
	"github.com/orders-oss/orders/internal/problem"
	"github.com/orders-oss/orders/pkg/events"
)

// getOrder answers GET /orders/{id}: the order folded from the event store (strongly consistent: every
// command answered before is in it), now, at ?version=N or ?as_of=<time>, with ETag its version;
// If-None-Match with that tag answers 304.
func (s *server) getOrder(c echo.Context) error {
	at, err := parseAt(c.QueryParams())
	if err != nil {
		return err
	}
	p, err := principal(c)
	if err != nil {
		return err
	}
	o, err := s.Commands.Order(c.Request().Context(), p, c.Param("id"), at)
	if err != nil {
		return err
	}
	tag := httpserver.ETag(o.Version)
	c.Response().Header().Set("ETag", tag)
	if httpserver.NoneMatch(c.Request().Header.Get("If-None-Match"), tag) {
		return c.NoContent(http.StatusNotModified)
	}
	return c.JSON(http.StatusOK, o)
}

// cursorPattern is an audit trail cursor (a version) as docs/openapi.yaml allows it.
var cursorPattern = regexp.MustCompile(`^[1-9][0-9]{0,17}$`)

type eventsPage struct {
	Events     []events.Envelope `json:"events"`
	NextCursor *string           `json:"next_cursor"`
}

// listEvents is the audit trail: each event as stored (its schema version and data as written). The
// cursor is the last version of the previous page (opaque to clients); ?to_version=N and ?until=<time>
// end the trail there.
func (s *server) listEvents(c echo.Context) error {
	r, err := parseTrail(c.QueryParams())
	if err != nil {
		return err
	}
	p, err := principal(c)
	if err != nil {
		return err
	}
	page, more, err := s.Commands.Events(c.Request().Context(), p, c.Param("id"), r)
	if err != nil {
		return err
	}
	out := eventsPage{Events: page}
	if more {
		next := strconv.FormatInt(page[r.Limit-1].Version, 10)
		out.NextCursor = &next
	}
	if out.Events == nil {
		out.Events = []events.Envelope{}
	}
	return c.JSON(http.StatusOK, out)
}

// queryParams reads query parameters and collects what is wrong with them, so that one answer names
// every bad parameter (code invalid_parameter, `errors` with each field).
type queryParams struct {
	q      url.Values
	errors []problem.FieldError
}

func (p *queryParams) fail(name, msg string) {
	p.errors = append(p.errors, problem.FieldError{Field: name, Message: msg})
}

// one returns the parameter's value and whether it is there; given twice, it is a mistake.
func (p *queryParams) one(name string) (string, bool) {
	vs, ok := p.q[name]
	if ok && len(vs) > 1 {
		p.fail(name, "must be given once")
		return "", false
	}
	if !ok {
		return "", false
	}
	return vs[0], true
}

// version reads a version: a whole number from 1.
func (p *queryParams) version(name string) int64 {
	v, ok := p.one(name)
	if !ok {
		return 0
	}
	n, ok := httpserver.ParseInteger(v)
	if !ok || n < 1 {
		p.fail(name, "must be a version: a whole number from 1 to 9223372036854775807")
		return 0
	}
	return n
}

// time reads an RFC 3339 time.
func (p *queryParams) time(name string) time.Time {
	v, ok := p.one(name)
	if !ok {
		return time.Time{}
	}
	t, err := time.Parse(time.RFC3339, v)
	if err != nil {
		msg := "must be an RFC 3339 time like 2026-11-22T15:00:00Z or 2026-11-22T16:00:00.5+01:00"
		if strings.Contains(v, " ") {
			msg += " (in a URL, write + as %2B: a + reads as a space)"
		}
		p.fail(name, msg)
		return time.Time{}
	}
	return t
}

func (p *queryParams) err() error {
	if len(p.errors) == 0 {
		return nil
	}
	pr := problem.New(http.StatusBadRequest, "invalid_parameter", "some query parameters are invalid")
	pr.Errors = p.errors
	return pr
}

// parseAt reads the point of history GET /orders/{id} wants: ?version=N, ?as_of=<RFC 3339 time>, or
// neither (now); both at once is a mistake.
func parseAt(q url.Values) (command.At, error) {
	p := &queryParams{q: q}
	at := command.At{Version: p.version("version"), Time: p.time("as_of")}
	malformed := len(p.errors) > 0
	if q.Has("version") && q.Has("as_of") {
		p.fail("version", "cannot be combined with as_of: ask for a version or a time")
		p.fail("as_of", "cannot be combined with version: ask for a version or a time")
		if !malformed {
			// A rule a schema cannot state (docs/openapi.yaml says it): a code of its own.
			pr := problem.New(http.StatusBadRequest, "conflicting_parameters", "version and as_of cannot be combined: ask for a version or a time")
			pr.Errors = p.errors
			return at, pr
		}
	}
	return at, p.err()
}

// parseTrail reads the page of the audit trail asked for: limit (1 to 500, 100 by default), cursor,
// to_version and until.
func parseTrail(q url.Values) (eventstore.Range, error) {
	r := eventstore.Range{Limit: 100}
	if v, ok := q["limit"]; ok {
		n, ok := httpserver.ParseInteger(v[0])
		if !ok || n < 1 || n > 500 {
			return r, problem.New(http.StatusBadRequest, "invalid_limit", "limit must be a whole number from 1 to 500")
		}
		r.Limit = int(n)
	}
	if v, ok := q["cursor"]; ok {
		if !cursorPattern.MatchString(v[0]) {
			return r, problem.New(http.StatusBadRequest, "invalid_cursor", "cursor must be a next_cursor value from a previous page")
		}
		r.After, _ = strconv.ParseInt(v[0], 10, 64)
	}
	p := &queryParams{q: q}
	r.To, r.Until = p.version("to_version"), p.time("until")
	return r, p.err()
}
