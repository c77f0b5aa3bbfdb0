package chaos

import (
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestSendClassifiesOutcomes(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/ok":
			w.WriteHeader(http.StatusCreated)
		case "/refused":
			w.WriteHeader(http.StatusConflict)
		case "/limited":
			w.WriteHeader(http.StatusTooManyRequests)
		case "/broken":
			w.WriteHeader(http.StatusInternalServerError)
		case "/slow":
			time.Sleep(300 * time.Millisecond)
		case "/hangup":
			conn, _, _ := w.(http.Hijacker).Hijack()
			conn.Close()
		case "/auth":
			if r.Header.Get("Authorization") != "Bearer t0k" {
				w.WriteHeader(http.StatusUnauthorized)
			}
		}
	}))
	defer srv.Close()
	// A port nothing listens on.
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	closed := "http://" + l.Addr().String()
	l.Close()

	c := NewClient(srv.URL, nil, 100*time.Millisecond)
	for _, tc := range []struct {
		base, path string
		want       Outcome
	}{
		{srv.URL, "/ok", OK},
		{srv.URL, "/refused", Failed},
		{srv.URL, "/limited", Failed},
		{srv.URL, "/broken", Unknown},
		{srv.URL, "/slow", Unknown},
		{srv.URL, "/hangup", Unknown},
		{closed, "/ok", Refused},
	} {
		c.Base = tc.base
		if got := c.Send(context.Background(), http.MethodPost, tc.path, []byte(`{}`), nil); got.Outcome != tc.want {
			t.Errorf("Send(%s) = %s (%v), want %s", tc.path, got.Outcome, got.Err, tc.want)
		}
	}
	c.Base = srv.URL
	if a := c.Send(context.Background(), http.MethodPost, "/auth", nil, nil); !errors.Is(a.Err, ErrUnauthorized) {
		t.Errorf("Send without a token to an API that needs one: err = %v, want ErrUnauthorized", a.Err)
	}
	c.Tokens = staticToken("t0k")
	if a := c.Send(context.Background(), http.MethodPost, "/auth", nil, nil); a.Outcome != OK {
		t.Errorf("Send with the token: %s (%v), want ok", a.Outcome, a.Err)
	}
}

func TestDefaultTokens(t *testing.T) {
	env := func(m map[string]string) func(string) string { return func(k string) string { return m[k] } }
	ctx := context.Background()
	if tok, _ := DefaultTokens(env(map[string]string{"ORDERS_TOKEN": " abc "}), "/nonexistent").Token(ctx); tok != "abc" {
		t.Errorf("ORDERS_TOKEN: token %q, want abc", tok)
	}
	src := DefaultTokens(env(nil), "/nonexistent/ordersctl")
	if tok, err := src.Token(ctx); tok != "" || err != nil {
		t.Errorf("no ordersctl: token %q, %v; want none", tok, err)
	}
	if d := src.Describe(); !strings.HasPrefix(d, "none") {
		t.Errorf("Describe() = %q, want it to say none", d)
	}

	dir := t.TempDir()
	script := filepath.Join(dir, "ordersctl")
	write := func(body string) {
		if err := os.WriteFile(script, []byte("#!/bin/sh\n"+body+"\n"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	write(`[ "$1 $2 $3 $4 $5" = "token --sub chaos --role staff" ] && echo tok-from-ctl`)
	if tok, _ := DefaultTokens(env(nil), script).Token(ctx); tok != "tok-from-ctl" {
		t.Errorf("ordersctl token: %q, want tok-from-ctl", tok)
	}
	write(`echo 'unknown command "token"' >&2; exit 1`)
	if tok, err := DefaultTokens(env(nil), script).Token(ctx); tok != "" || err != nil {
		t.Errorf("ordersctl without a token command: %q, %v; want none", tok, err)
	}
}

func TestSummarize(t *testing.T) {
	s := Summarize([]time.Duration{3 * time.Second, time.Second, 2 * time.Second, 10 * time.Second})
	if s.N != 4 || s.Median != 2500*time.Millisecond || s.Max != 10*time.Second {
		t.Errorf("Summarize = %+v, want n 4, median 2.5s, max 10s", s)
	}
	if s := Summarize([]time.Duration{time.Second, 5 * time.Second, 2 * time.Second}); s.Median != 2*time.Second {
		t.Errorf("Summarize(odd).Median = %s, want 2s", s.Median)
	}
	if s := Summarize(nil); s.String() != "-" {
		t.Errorf("Summarize(nil) = %q, want -", s)
	}
}

func TestSampleLiveAndCaughtUp(t *testing.T) {
	for _, tc := range []struct {
		name            string
		s               Sample
		live, caughtUup bool
	}{
		{"all done", Sample{Lag: map[string]int64{"a": 0}, LagSlack: map[string]int64{"a": 0}}, true, true},
		{"records on their way", Sample{Backlog: 3, Lag: map[string]int64{"a": 2}, LagSlack: map[string]int64{"a": 0}}, true, false},
		{"an old row in the outbox", Sample{Backlog: 3, Stale: 1, Lag: map[string]int64{"a": 0}, LagSlack: map[string]int64{"a": 0}}, false, false},
		{"a group behind the head of a moment ago", Sample{Lag: map[string]int64{"a": 9}, LagSlack: map[string]int64{"a": 4}}, false, false},
		{"no earlier look yet", Sample{Lag: map[string]int64{"a": 0}}, false, true},
		{"an error", Sample{Err: io.EOF}, false, false},
	} {
		if got := tc.s.Live(); got != tc.live {
			t.Errorf("%s: Live() = %v, want %v", tc.name, got, tc.live)
		}
		if got := tc.s.CaughtUp(); got != tc.caughtUup {
			t.Errorf("%s: CaughtUp() = %v, want %v", tc.name, got, tc.caughtUup)
		}
	}
}

func TestRememberReturnsTheLookASlackAgo(t *testing.T) {
	p := &Pipeline{Slack: 250 * time.Millisecond}
	t0 := time.Now()
	if old := p.remember(t0, map[int32]int64{0: 1}); old != nil {
		t.Errorf("first look: old = %v, want nil", old)
	}
	p.remember(t0.Add(100*time.Millisecond), map[int32]int64{0: 2})
	p.remember(t0.Add(200*time.Millisecond), map[int32]int64{0: 3})
	if old := p.remember(t0.Add(360*time.Millisecond), map[int32]int64{0: 4}); old[0] != 2 {
		t.Errorf("at 360ms: old = %v, want the look at 100ms (2)", old)
	}
	if len(p.ends) != 3 {
		t.Errorf("kept %d looks, want 3 (older ones are dropped)", len(p.ends))
	}
	// After a pause in the sampling, the newest old-enough look is too old to judge by: a group that
	// stalled since then must not pass for live.
	if old := p.remember(t0.Add(3*time.Second), map[int32]int64{0: 9}); old != nil {
		t.Errorf("after 2.6 s without a look: old = %v, want nil", old)
	}
	if old := p.remember(t0.Add(3300*time.Millisecond), map[int32]int64{0: 10}); old[0] != 9 {
		t.Errorf("at 3.3 s: old = %v, want the look at 3 s (9)", old)
	}
}

func TestIsProgram(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		want bool
	}{
		{Relay, []string{"/repo/bin/outbox-relay"}, true},
		{Relay, []string{"/usr/bin/sleep", "100"}, false},
		{Kafka, []string{"/usr/lib/jvm/bin/java", "-cp", "x", "kafka.Kafka", "server.properties"}, true},
		{OpenSearch, []string{"java", "org.opensearch.bootstrap.OpenSearch", "-d"}, true},
		{OpenSearch, []string{"java", "kafka.Kafka"}, false},
		{Postgres, []string{"/usr/lib/postgresql/15/bin/postgres", "-D", "x"}, true},
		{standbyRelayName, []string{"/repo/bin/outbox-relay"}, true},
		{Relay, nil, false},
	} {
		if got := isProgram(tc.name, tc.args); got != tc.want {
			t.Errorf("isProgram(%s, %q) = %v, want %v", tc.name, tc.args, got, tc.want)
		}
	}
}

func TestReadStackFollowsTheScriptsVariables(t *testing.T) {
	env := map[string]string{"ORDERS_LOCAL_DIR": "/tmp/x", "PG_PORT": "15432", "KAFKA_PORT": "19092", "OPENSEARCH_PORT": "19200",
		"COMMAND_PORT": "18080", "RELAY_PORT": "18082"}
	s, err := ReadStack(func(k string) string { return env[k] }, "/repo")
	if err != nil {
		t.Fatal(err)
	}
	if s.Local != "/tmp/x" || s.DatabaseURL != "postgres://orders:orders@127.0.0.1:15432/orders?sslmode=disable" ||
		s.Brokers[0] != "127.0.0.1:19092" || s.OpenSearchURL != "http://127.0.0.1:19200" ||
		s.URL(CommandAPI) != "http://127.0.0.1:18080" || s.URL(Relay) != "http://127.0.0.1:18082" || s.URL(QueryAPI) != "http://127.0.0.1:8081" {
		t.Errorf("ReadStack = %+v", s)
	}
	if got := s.pidFile(Kafka); got != "/tmp/x/run/kafka.pid" {
		t.Errorf("pidFile(kafka) = %s", got)
	}
	if got := s.pidFile(ProjectorSearch); got != "/tmp/x/services/projector-search.pid" {
		t.Errorf("pidFile(projector-search) = %s", got)
	}
	if s, _ := ReadStack(func(string) string { return "" }, "/repo"); s.Local != "/repo/.local" || s.URL(CommandAPI) != "http://127.0.0.1:8080" {
		t.Errorf("defaults: %+v", s)
	}
}

func TestWorkloadRetries(t *testing.T) {
	var keys, bodies []string
	var corr []string
	calls := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls++
		body, _ := io.ReadAll(r.Body)
		keys, bodies, corr = append(keys, r.Header.Get("Idempotency-Key")), append(bodies, string(body)), append(corr, r.Header.Get("X-Correlation-ID"))
		switch {
		case r.URL.Path == "/orders" && calls == 1:
			w.WriteHeader(http.StatusBadGateway) // unknown: was it placed?
		case r.URL.Path == "/orders":
			w.Header().Set("Location", "/orders/o-1")
			w.WriteHeader(http.StatusCreated)
			_, _ = w.Write([]byte(`{"id":"o-1","version":1,"total":700,"currency":"EUR"}`))
		case calls == 3:
			w.Header().Set("Retry-After", "0")
			w.WriteHeader(http.StatusTooManyRequests)
		case strings.HasSuffix(r.URL.Path, "/payment") && calls == 5:
			w.WriteHeader(http.StatusServiceUnavailable) // unknown, and not retried: no key
		default:
			w.WriteHeader(http.StatusOK)
			_, _ = w.Write([]byte(`{"id":"o-1","version":2,"total":900}`))
		}
	}))
	defer srv.Close()
	rec := NewRecorder()
	w := &Workload{Client: NewClient(srv.URL, nil, time.Second), Rec: rec, Scenario: "s", Clients: 1, Rate: 100}
	rnd := newRand()
	o, ok := w.PlaceOrder(context.Background(), rnd)
	if !ok || o.ID != "o-1" {
		t.Fatalf("PlaceOrder = %+v, %v; want order o-1", o, ok)
	}
	if len(keys) != 2 || keys[0] == "" || keys[0] != keys[1] || bodies[0] != bodies[1] || corr[0] != corr[1] {
		t.Errorf("the retried placement must repeat its key, body and correlation id: keys %q, correlation %q", keys, corr)
	}
	if a := w.On(context.Background(), &o, AddItem, 0, rnd); a.Outcome != OK || o.Total != 900 {
		t.Errorf("add item after a 429: %s (total %d), want ok (900)", a.Outcome, o.Total)
	}
	if a := w.On(context.Background(), &o, Pay, o.Total, rnd); a.Outcome != Unknown {
		t.Errorf("pay answered 503: %s, want unknown", a.Outcome)
	}
	cmds := rec.Commands("s")
	if len(cmds) != 3 || cmds[0].Attempts != 2 || cmds[0].OrderID != "o-1" || cmds[1].Attempts != 2 || cmds[2].Attempts != 1 {
		t.Errorf("recorded %+v; want place (2 attempts, order o-1), add item (2 attempts), pay (1 attempt)", cmds)
	}
	if calls != 5 {
		t.Errorf("%d requests, want 5", calls)
	}
}

func newRand() *rand.Rand { return rand.New(rand.NewPCG(1, 2)) }
