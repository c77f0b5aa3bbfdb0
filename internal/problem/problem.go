// Package problem is the HTTP error format of every orders API: RFC 9457 application/problem+json with
// a stable machine-readable code and, for validation failures, the list of field errors. The services
// map their domain errors to a Problem in one place and install Handler as echo's error handler.
package problem

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"

	"github.com/labstack/echo/v4"
)

// ContentType is the media type of every error answer.
const ContentType = "application/problem+json"

// FieldError names one invalid input field by its JSON path, e.g. "items[0].quantity".
type FieldError struct {
	Field   string `json:"field"`
	Message string `json:"message"`
}

// Problem is an error answer. Type is "about:blank" unless set; Title defaults to the status text.
type Problem struct {
	Type     string       `json:"type"`
	Title    string       `json:"title"`
	Status   int          `json:"status"`
	Detail   string       `json:"detail,omitempty"`
	Instance string       `json:"instance,omitempty"`
	Code     string       `json:"code"`
	Errors   []FieldError `json:"errors,omitempty"`
	// Headers are set on the answer beside the body, e.g. Retry-After on a 503.
	Headers map[string]string `json:"-"`
}

// New returns a problem with the given status, stable code and human-readable detail.
func New(status int, code, detail string) *Problem {
	return &Problem{Type: "about:blank", Title: http.StatusText(status), Status: status, Code: code, Detail: detail}
}

// Newf is New with a formatted detail.
func Newf(status int, code, format string, args ...any) *Problem {
	return New(status, code, fmt.Sprintf(format, args...))
}

func (p *Problem) Error() string { return fmt.Sprintf("%d %s: %s", p.Status, p.Code, p.Detail) }

// Mapper turns a service's own errors (domain errors, conflicts) into problems; it returns nil for an
// error it does not know, which then becomes a 500.
type Mapper func(error) *Problem

// Handler is echo's HTTPErrorHandler for the orders APIs: one table from error to answer. Unknown errors
// are logged with the request id and answered as a 500 without details.
func Handler(log *slog.Logger, mapper Mapper) echo.HTTPErrorHandler {
	return func(err error, c echo.Context) {
		if c.Response().Committed {
			return
		}
		p := From(err, mapper)
		if p.Status >= 500 {
			log.ErrorContext(c.Request().Context(), "request failed", "error", err.Error(),
				"method", c.Request().Method, "path", c.Request().URL.Path,
				"request_id", c.Response().Header().Get(echo.HeaderXRequestID))
		}
		if p.Instance == "" {
			p.Instance = c.Request().URL.Path
		}
		Write(c, p)
	}
}

// From converts any error into a problem: a *Problem as it is, echo's own errors (unknown route, wrong
// method, body limit) by status, then the mapper, else a 500.
func From(err error, mapper Mapper) *Problem {
	var p *Problem
	if errors.As(err, &p) {
		cp := *p
		return &cp
	}
	var he *echo.HTTPError
	if errors.As(err, &he) {
		switch he.Code {
		case http.StatusNotFound:
			return New(http.StatusNotFound, "not_found", "no such resource")
		case http.StatusMethodNotAllowed:
			return New(http.StatusMethodNotAllowed, "method_not_allowed", "this resource does not accept that method")
		case http.StatusRequestEntityTooLarge:
			return New(http.StatusRequestEntityTooLarge, "body_too_large", "the request body is over the size limit")
		case http.StatusUnsupportedMediaType:
			return New(http.StatusUnsupportedMediaType, "unsupported_media_type", "send the body as application/json")
		}
		if he.Code >= 400 && he.Code < 500 {
			return New(he.Code, "bad_request", fmt.Sprint(he.Message))
		}
	}
	if mapper != nil {
		if p := mapper(err); p != nil {
			return p
		}
	}
	return New(http.StatusInternalServerError, "internal", "the server could not complete the request; it has been logged")
}

// Write sends p as the response.
func Write(c echo.Context, p *Problem) {
	body, err := json.Marshal(p)
	if err != nil { // cannot happen for this type; keep the answer well-formed anyway
		body = []byte(`{"type":"about:blank","title":"Internal Server Error","status":500,"code":"internal"}`)
		p.Status = http.StatusInternalServerError
	}
	for k, v := range p.Headers {
		c.Response().Header().Set(k, v)
	}
	if c.Request().Method == http.MethodHead {
		_ = c.NoContent(p.Status)
		return
	}
	_ = c.Blob(p.Status, ContentType, body)
}
