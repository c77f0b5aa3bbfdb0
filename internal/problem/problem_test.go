package problem

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/labstack/echo/v4"
)

var errDomain = errors.New("order is closed")

func mapper(err error) *Problem {
	if errors.Is(err, errDomain) {
		return New(http.StatusConflict, "order_closed", err.Error())
	}
	return nil
}

func TestHandlerAnswersProblemJSON(t *testing.T) {
	tests := []struct {
		name       string
		err        error
		wantStatus int
		wantCode   string
	}{
		{"problem as is", Newf(http.StatusUnprocessableEntity, "validation_failed", "bad %s", "items"), 422, "validation_failed"},
		{"wrapped domain error through the mapper", fmt.Errorf("ship: %w", errDomain), 409, "order_closed"},
		{"echo 404", echo.ErrNotFound, 404, "not_found"},
		{"echo 405", echo.ErrMethodNotAllowed, 405, "method_not_allowed"},
		{"echo 413", echo.ErrStatusRequestEntityTooLarge, 413, "body_too_large"},
		{"echo 415", echo.ErrUnsupportedMediaType, 415, "unsupported_media_type"},
		{"unknown error", errors.New("connection reset"), 500, "internal"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := echo.New()
			req := httptest.NewRequest(http.MethodPost, "/orders/x", nil)
			rec := httptest.NewRecorder()
			Handler(slog.New(slog.NewTextHandler(io.Discard, nil)), mapper)(tt.err, e.NewContext(req, rec))
			if rec.Code != tt.wantStatus {
				t.Errorf("status = %d, want %d", rec.Code, tt.wantStatus)
			}
			if ct := rec.Header().Get("Content-Type"); ct != ContentType {
				t.Errorf("Content-Type = %q, want %q", ct, ContentType)
			}
			var p Problem
			if err := json.Unmarshal(rec.Body.Bytes(), &p); err != nil {
				t.Fatalf("body is not JSON: %v", err)
			}
			if p.Code != tt.wantCode || p.Status != tt.wantStatus || p.Instance != "/orders/x" || p.Title == "" {
				t.Errorf("problem = %+v, want code %q status %d instance /orders/x and a title", p, tt.wantCode, tt.wantStatus)
			}
		})
	}
}

func TestInternalErrorsDoNotLeakDetails(t *testing.T) {
	p := From(errors.New("pq: password authentication failed for user orders"), nil)
	if p.Status != 500 || p.Detail == "" || p.Detail == "pq: password authentication failed for user orders" {
		t.Errorf("From(internal) = %+v, want a 500 with a generic detail", p)
	}
}

func TestHeadersGoOnTheAnswerNotInTheBody(t *testing.T) {
	p := New(http.StatusServiceUnavailable, "busy", "retry")
	p.Headers = map[string]string{"Retry-After": "5"}
	rec := httptest.NewRecorder()
	Handler(slog.New(slog.NewTextHandler(io.Discard, nil)), nil)(fmt.Errorf("wrapped: %w", p), echo.New().NewContext(httptest.NewRequest(http.MethodGet, "/x", nil), rec))
	if rec.Code != 503 || rec.Header().Get("Retry-After") != "5" {
		t.Errorf("answer = %d, Retry-After %q; want 503 and 5", rec.Code, rec.Header().Get("Retry-After"))
	}
	var body map[string]any
	if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil || body["code"] != "busy" || len(body) != 6 {
		t.Errorf("body = %s (%v), want the problem's six members and no headers", rec.Body.String(), err)
	}
}
