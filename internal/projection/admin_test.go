package projection

import (
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"

	"github.com/orders-oss/orders/internal/auth"
	"github.com/orders-oss/orders/internal/auth/authtest"
	"github.com/orders-oss/orders/internal/httpserver"
)

// The replay endpoint is an admin's: staff and customers get 403, no token 401; metrics and probes
// stay open.
func TestReplayNeedsAnAdmin(t *testing.T) {
	issuer := authtest.New(t)
	srv := httpserver.New(httpserver.Config{Service: "test", Auth: issuer.Auth})
	var loop atomic.Pointer[Loop] // not started: an admin gets 503 "starting", past the checks
	Routes(srv.Echo, &loop, auth.Require(auth.ReplayParked))
	for _, tt := range []struct {
		who  string
		auth string
		want int
	}{
		{"nobody", "", 401},
		{"a customer", issuer.Bearer(t, authtest.Ada), 403},
		{"staff", issuer.Bearer(t, authtest.Staff), 403},
		{"an admin", issuer.Bearer(t, authtest.Admin), 503},
	} {
		req := httptest.NewRequest(http.MethodPost, "/parked/01936f3e-0000-7000-8000-000000000001/replay", nil)
		if tt.auth != "" {
			req.Header.Set("Authorization", tt.auth)
		}
		rec := httptest.NewRecorder()
		srv.ServeHTTP(rec, req)
		if rec.Code != tt.want {
			t.Errorf("%s replays = %d %s, want %d", tt.who, rec.Code, rec.Body, tt.want)
		}
	}
	rec := httptest.NewRecorder()
	srv.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/healthz", nil))
	if rec.Code != 200 {
		t.Errorf("/healthz without a token = %d, want 200", rec.Code)
	}
}
