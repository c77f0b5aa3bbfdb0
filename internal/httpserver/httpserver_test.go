package httpserver

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/labstack/echo/v4"
)

// On shutdown the server first answers /readyz 503 while it still serves (so a load balancer stops
// sending new requests), then stops.
func TestReadinessFlipsBeforeShutdown(t *testing.T) {
	srv := New(Config{Service: "test", Ready: func(context.Context) error { return nil }})
	ctx, cancel := context.WithCancel(context.Background())
	addrc := make(chan net.Addr, 1)
	done := make(chan error, 1)
	go func() {
		done <- srv.Run(ctx, Listen{Addr: "127.0.0.1:0", DrainDelay: 700 * time.Millisecond}, func(a net.Addr) { addrc <- a })
	}()
	base := "http://" + (<-addrc).String()
	status := func(path string) int {
		res, err := http.Get(base + path)
		if err != nil {
			return -1
		}
		res.Body.Close()
		return res.StatusCode
	}
	if got := status("/readyz"); got != http.StatusOK {
		t.Fatalf("/readyz before shutdown = %d, want 200", got)
	}
	stopped := time.Now()
	cancel()
	time.Sleep(100 * time.Millisecond)
	if got := status("/readyz"); got != http.StatusServiceUnavailable {
		t.Errorf("/readyz while draining = %d, want 503", got)
	}
	if got := status("/healthz"); got != http.StatusOK {
		t.Errorf("/healthz while draining = %d, want 200 (still serving)", got)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run = %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after the drain delay")
	}
	if waited := time.Since(stopped); waited < 700*time.Millisecond {
		t.Errorf("Run returned %s after its context ended, want at least the drain delay (700ms)", waited)
	}
	if got := status("/healthz"); got != -1 {
		t.Errorf("/healthz after Run returned = %d, want no answer", got)
	}
}

func TestRunWithStopsTheServerWhenWorkEnds(t *testing.T) {
	srv := New(Config{Service: "test"})
	want := errors.New("work failed")
	err := srv.RunWith(context.Background(), Listen{Addr: "127.0.0.1:0"}, func(ctx context.Context) error { return want })
	if !errors.Is(err, want) {
		t.Fatalf("RunWith = %v, want the work's error", err)
	}
}

// Without an authenticator every route but the probes answers 401: no service serves an
// unauthenticated API by omission.
func TestRoutesFailClosedWithoutAuth(t *testing.T) {
	srv := New(Config{Service: "test"})
	srv.GET("/orders", func(c echo.Context) error { return c.String(http.StatusOK, "secret") })
	for path, want := range map[string]int{"/orders": 401, "/nowhere": 401, "/healthz": 200, "/readyz": 200} {
		rec := httptest.NewRecorder()
		srv.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
		if rec.Code != want {
			t.Errorf("GET %s = %d %s, want %d", path, rec.Code, rec.Body, want)
		}
		if want == 401 && rec.Header().Get("WWW-Authenticate") == "" {
			t.Errorf("GET %s: 401 without WWW-Authenticate", path)
		}
	}
}
