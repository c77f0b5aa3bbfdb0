//go:build integration

package httpapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/orders-oss/orders/internal/apispec"
	"github.com/orders-oss/orders/internal/auth/authtest"
	"github.com/orders-oss/orders/internal/command"
	"github.com/orders-oss/orders/internal/eventstore"
	"github.com/orders-oss/orders/internal/order"
	"github.com/orders-oss/orders/internal/problem"
	"github.com/orders-oss/orders/internal/testenv"
	"github.com/orders-oss/orders/pkg/api"
	"github.com/orders-oss/orders/pkg/events"
	"github.com/orders-oss/orders/services/command/httpapi"
)

// syncBuffer is a log sink the snapshot goroutine and the test share.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}
func (s *syncBuffer) String() string { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

// historyEnv is the command API as services/command wires it, snapshots every `every` events (0: off),
// writing events at writeVersion (0: latest), with its metrics and log.
type historyEnv struct {
	*env
	svc  *command.Service
	logs *syncBuffer
}

func setupHistory(t *testing.T, every, writeVersion int) *historyEnv {
	t.Helper()
	owner := testenv.Postgres(t)
	if err := eventstore.Migrate(context.Background(), owner); err != nil {
		t.Fatal(err)
	}
	pool := testenv.PostgresAs(t, owner, "orders_command")
	issuer := authtest.New(t)
	logs := &syncBuffer{}
	log := slog.New(slog.NewTextHandler(logs, nil))
	store := eventstore.New(pool)
	keys := testenv.Keyring(t, pool)
	svc := &command.Service{Store: store, Keys: keys, MaxRetries: 5, WriteVersion: writeVersion}
	reg := prometheus.NewRegistry()
	if every > 0 {
		svc.Snapshots = command.NewSnapshots(store, every, 0, log).SealWith(keys)
		reg.MustRegister(svc.Snapshots.Collectors()...)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { defer close(done); svc.Snapshots.Run(ctx) }()
		t.Cleanup(func() { cancel(); <-done })
	}
	srv := httptest.NewServer(httpapi.New(httpapi.Config{Commands: svc, Log: log, BodyLimit: "16KB", Ready: pool.Ping, Metrics: reg,
		Auth: issuer.Auth}))
	t.Cleanup(srv.Close)
	return &historyEnv{env: &env{t: t, srv: srv, pool: owner, issuer: issuer, staff: issuer.Bearer(t, authtest.Staff),
		client: apispec.Client(t, "../../../docs/openapi.yaml", apispec.CommandServer)}, svc: svc, logs: logs}
}

func (e *historyEnv) get(path string, headers ...string) (int, api.Order, string) {
	e.t.Helper()
	res, raw := e.do("GET", path, "", headers...)
	var o api.Order
	if res.StatusCode == 200 {
		if err := json.Unmarshal(raw, &o); err != nil {
			e.t.Fatalf("GET %s: %v: %s", path, err, raw)
		}
	}
	return res.StatusCode, o, res.Header.Get("ETag")
}

func (e *historyEnv) problem(method, path, body string, status int, code string) problem.Problem {
	e.t.Helper()
	res, raw := e.do(method, path, body)
	var p problem.Problem
	if res.StatusCode != status || json.Unmarshal(raw, &p) != nil || p.Code != code || res.Header.Get("Content-Type") != problem.ContentType {
		e.t.Fatalf("%s %s = %d %s, want %d %s", method, path, res.StatusCode, raw, status, code)
	}
	return p
}

// readdress changes the shipping address (a command that can be repeated while the order is placed).
func (e *historyEnv) readdress(id string, n int) api.Order {
	e.t.Helper()
	res, raw := e.do("PUT", "/orders/"+id+"/shipping-address", fmt.Sprintf(`{"name": "Ada", "line1": "%d Rue", "line2": "", "city": "Paris", "postal_code": "75001", "country": "FR"}`, n))
	var o api.Order
	if res.StatusCode != 200 || json.Unmarshal(raw, &o) != nil {
		e.t.Fatalf("PUT shipping-address = %d %s", res.StatusCode, raw)
	}
	return o
}

func (e *historyEnv) metric(name string) float64 {
	e.t.Helper()
	v, ok := testenv.Metric(e.srv.URL+"/metrics", name)
	if !ok {
		e.t.Fatalf("no metric %s at /metrics", name)
	}
	return v
}

// insert stores an event directly, as another release wrote it (with its outbox row, as every append).
func (e *historyEnv) insert(id string, version int64, typ string, schemaVersion int, data string) {
	e.t.Helper()
	_, err := e.pool.Exec(context.Background(), `WITH ev AS (
		INSERT INTO events (stream_id, version, event_id, type, schema_version, data, metadata, occurred_at)
		VALUES ($1, $2, $3, $4, $5, $6, '{"correlation_id":"c","causation_id":"r","actor":"old-release"}', now())
		RETURNING position, stream_id, version)
		INSERT INTO outbox (position, stream_id, version) SELECT position, stream_id, version FROM ev`,
		id, version, uuid.Must(uuid.NewV7()), typ, schemaVersion, data)
	if err != nil {
		e.t.Fatal(err)
	}
}

func TestGetOrderIsStronglyConsistent(t *testing.T) {
	t.Parallel()
	e := setupHistory(t, 100, 0)
	res, raw := e.do("POST", "/orders", placeBody)
	if res.StatusCode != 201 {
		t.Fatalf("POST /orders = %d %s", res.StatusCode, raw)
	}
	// The Location of 201 resolves, at once, to the answer itself.
	status, got, tag := e.get(res.Header.Get("Location"))
	if status != 200 || tag != `"1"` || string(mustJSON(t, got)) != strings.TrimSpace(string(raw)) {
		t.Fatalf("GET %s = %d %s %+v, want 200 \"1\" and the body of the 201", res.Header.Get("Location"), status, tag, got)
	}
	// Every command answered before is in the read: no waiting for Kafka.
	for i := range 5 {
		after := e.readdress(got.ID, i)
		status, now, tag := e.get("/orders/" + got.ID)
		if status != 200 || tag != fmt.Sprintf(`"%d"`, after.Version) || !same(now, after) {
			t.Fatalf("GET after a command answered version %d = %d %s %+v", after.Version, status, tag, now)
		}
	}
	res, _ = e.do("GET", "/orders/"+got.ID, "", "If-None-Match", `"6"`)
	if res.StatusCode != 304 || res.Header.Get("ETag") != `"6"` {
		t.Errorf("If-None-Match with the current tag = %d %s, want 304", res.StatusCode, res.Header.Get("ETag"))
	}
	if res, _ := e.do("GET", "/orders/"+got.ID, "", "If-None-Match", `"5"`); res.StatusCode != 200 {
		t.Errorf("If-None-Match with an old tag = %d, want 200", res.StatusCode)
	}
	e.problem("GET", "/orders/01936f3e-0000-7000-8000-000000000999", "", 404, order.CodeNotFound)
	e.problem("GET", "/orders/not-a-uuid", "", 404, order.CodeNotFound)
	e.problem("GET", "/orders/01936f3e-0000-7000-8000-000000000999?version=1", "", 404, order.CodeNotFound)
	e.problem("GET", "/orders/01936f3e-0000-7000-8000-000000000999?as_of=2026-01-01T00:00:00Z", "", 404, order.CodeNotFound)
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func same(a, b api.Order) bool {
	x, errX := json.Marshal(a)
	y, errY := json.Marshal(b)
	return errX == nil && errY == nil && bytes.Equal(x, y)
}

func TestTimeTravel(t *testing.T) {
	t.Parallel()
	e := setupHistory(t, 3, 0) // snapshots at 3 and 6: time travel starts from them
	placed := e.place()
	answers := []api.Order{placed}
	for i := range 7 {
		answers = append(answers, e.readdress(placed.ID, i))
	}
	waitForSnapshots(t, e.env, placed.ID, 2)
	// ?version=N is the order right after its event N: what the command that recorded N answered.
	for _, want := range answers {
		status, got, tag := e.get(fmt.Sprintf("/orders/%s?version=%d", placed.ID, want.Version))
		if status != 200 || tag != fmt.Sprintf(`"%d"`, want.Version) || !same(got, want) {
			t.Errorf("GET ?version=%d = %d %s %+v, want the answer of that command %+v", want.Version, status, tag, got, want)
		}
	}
	// ?as_of=T is the order as the store knew it at T: up to the last event recorded at or before T.
	trail := e.trail(placed.ID, "")
	for i, ev := range trail {
		for _, at := range []time.Time{ev.RecordedAt, ev.RecordedAt.Add(time.Microsecond)} {
			if i+1 < len(trail) && !at.Before(trail[i+1].RecordedAt) {
				continue
			}
			q := url.Values{"as_of": {at.Format(time.RFC3339Nano)}}.Encode()
			status, got, tag := e.get("/orders/" + placed.ID + "?" + q)
			if status != 200 || got.Version != ev.Version || tag != fmt.Sprintf(`"%d"`, ev.Version) || !same(got, answers[i]) {
				t.Errorf("GET ?%s = %d %s version %d, want version %d", q, status, tag, got.Version, ev.Version)
			}
		}
	}
	// In another time zone, the same instant.
	at := trail[2].RecordedAt.In(time.FixedZone("", -5*3600)).Format(time.RFC3339Nano)
	if status, got, _ := e.get("/orders/" + placed.ID + "?" + url.Values{"as_of": {at}}.Encode()); status != 200 || got.Version != 3 {
		t.Errorf("GET ?as_of=%s = %d version %d, want version 3", at, status, got.Version)
	}
	if status, got, _ := e.get("/orders/" + placed.ID + "?as_of=2999-01-01T00:00:00Z"); status != 200 || got.Version != 8 {
		t.Errorf("GET ?as_of in the future = %d version %d, want the current order", status, got.Version)
	}
	// A 304 is by the version answered.
	if res, _ := e.do("GET", "/orders/"+placed.ID+"?version=4", "", "If-None-Match", `"4"`); res.StatusCode != 304 {
		t.Errorf("GET ?version=4 with If-None-Match \"4\" = %d, want 304", res.StatusCode)
	}
	// Before the order existed, or beyond its version: 404 not_found, saying what it has.
	before := url.Values{"as_of": {trail[0].RecordedAt.Add(-time.Microsecond).Format(time.RFC3339Nano)}}.Encode()
	if p := e.problem("GET", "/orders/"+placed.ID+"?"+before, "", 404, "not_found"); !strings.Contains(p.Detail, "did not exist yet") {
		t.Errorf("as_of before the order: detail %q", p.Detail)
	}
	if p := e.problem("GET", "/orders/"+placed.ID+"?version=9", "", 404, "not_found"); !strings.Contains(p.Detail, "at version 8") {
		t.Errorf("a version beyond the current one: detail %q", p.Detail)
	}
	// Malformed, out of range, or both: 400 naming each parameter.
	for query, want := range map[string][]string{
		"version=0":                            {"version"},
		"version=x":                            {"version"},
		"as_of=tomorrow":                       {"as_of"},
		"version=2&as_of=2026-11-22T10:00:00Z": {"version", "as_of"},
	} {
		code := "invalid_parameter"
		if strings.Contains(query, "&") {
			code = "conflicting_parameters" // a rule the spec cannot state has a code of its own
		}
		p := e.problem("GET", "/orders/"+placed.ID+"?"+query, "", 400, code)
		var fields []string
		for _, f := range p.Errors {
			fields = append(fields, f.Field)
		}
		if fmt.Sprint(fields) != fmt.Sprint(want) {
			t.Errorf("GET ?%s names %v, want %v", query, fields, want)
		}
	}
}

// trail reads the whole audit trail of an order with the given extra query.
func (e *historyEnv) trail(id, query string) []events.Envelope {
	e.t.Helper()
	res, raw := e.do("GET", "/orders/"+id+"/events?limit=500&"+query, "")
	var page struct {
		Events []events.Envelope `json:"events"`
	}
	if res.StatusCode != 200 || json.Unmarshal(raw, &page) != nil {
		e.t.Fatalf("GET events?%s = %d %s", query, res.StatusCode, raw)
	}
	return page.Events
}

func waitForSnapshots(t *testing.T, e *env, id string, n int) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		var got int
		if err := e.pool.QueryRow(context.Background(), "SELECT count(*) FROM snapshots WHERE stream_id = $1", id).Scan(&got); err != nil {
			t.Fatal(err)
		}
		if got >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d snapshots of %s after 10 s, want %d", got, id, n)
		}
	}
}

func TestAuditTrailEndsAtToVersionAndUntil(t *testing.T) {
	t.Parallel()
	e := setupHistory(t, 0, 0)
	o := e.place()
	for i := range 4 {
		e.readdress(o.ID, i)
	}
	all := e.trail(o.ID, "")
	versions := func(evs []events.Envelope) string {
		var v []int64
		for _, ev := range evs {
			v = append(v, ev.Version)
		}
		return fmt.Sprint(v)
	}
	until := func(t time.Time) string { return url.Values{"until": {t.Format(time.RFC3339Nano)}}.Encode() }
	for query, want := range map[string]string{
		"to_version=3":           "[1 2 3]",
		"to_version=99":          "[1 2 3 4 5]",
		until(all[1].RecordedAt): "[1 2]",
		until(all[0].RecordedAt.Add(-time.Microsecond)): "[]",
		"to_version=2&" + until(all[3].RecordedAt):      "[1 2]",
		"to_version=4&cursor=2":                         "[3 4]",
	} {
		if got := versions(e.trail(o.ID, query)); got != want {
			t.Errorf("events?%s = %s, want %s", query, got, want)
		}
	}
	// Pages of a bounded trail end where the bound is.
	res, raw := e.do("GET", "/orders/"+o.ID+"/events?limit=2&to_version=4", "")
	if !strings.Contains(string(raw), `"next_cursor":"2"`) || res.StatusCode != 200 {
		t.Fatalf("first page = %d %s", res.StatusCode, raw)
	}
	res, raw = e.do("GET", "/orders/"+o.ID+"/events?limit=2&to_version=4&cursor=2", "")
	if !strings.Contains(string(raw), `"next_cursor":null`) || res.StatusCode != 200 {
		t.Errorf("last page of to_version=4 = %d %s, want the end", res.StatusCode, raw)
	}
	e.problem("GET", "/orders/"+o.ID+"/events?to_version=0", "", 400, "invalid_parameter")
	e.problem("GET", "/orders/"+o.ID+"/events?until=noon", "", 400, "invalid_parameter")
	e.problem("GET", "/orders/01936f3e-0000-7000-8000-000000000999/events?to_version=3", "", 404, order.CodeNotFound)
}

func TestLoadsStartFromSnapshots(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := setupHistory(t, 10, 0)
	o := e.place()
	for i := range 34 {
		e.readdress(o.ID, i)
	}
	waitForSnapshots(t, e.env, o.ID, 3)
	var versions []int64
	rows, _ := e.pool.Query(ctx, "SELECT version FROM snapshots WHERE stream_id = $1 AND fold_schema_version = $2 ORDER BY version", o.ID, order.FoldSchemaVersion)
	for rows.Next() {
		var v int64
		_ = rows.Scan(&v)
		versions = append(versions, v)
	}
	rows.Close()
	if fmt.Sprint(versions) != "[10 20 30]" {
		t.Fatalf("snapshots at versions %v, want [10 20 30]: one every 10 events", versions)
	}
	// A load starts from the latest snapshot at or below the version it wants: mark snapshot 20 and
	// see which reads carry the mark.
	mark := func(version int64) {
		t.Helper()
		if _, err := e.pool.Exec(ctx, `UPDATE snapshots SET state = jsonb_set(state, '{customer,name}', '{"plain": "Marked"}') WHERE stream_id = $1 AND version = $2`, o.ID, version); err != nil {
			t.Fatal(err)
		}
	}
	mark(20)
	for v, marked := range map[int64]bool{19: false, 20: true, 25: true, 29: true, 30: false, 35: false} {
		_, got, _ := e.get(fmt.Sprintf("/orders/%s?version=%d", o.ID, v))
		if (got.Customer.Name != nil && *got.Customer.Name == "Marked") != marked || got.Version != v {
			t.Errorf("GET ?version=%d = version %d, customer %v; from snapshot 20: %v", v, got.Version, got.Customer.Name, marked)
		}
	}
	// Commands and current reads start from the latest one.
	mark(30)
	if _, got, _ := e.get("/orders/" + o.ID); got.Customer.Name == nil || *got.Customer.Name != "Marked" {
		t.Errorf("GET = customer %v, want the mark of snapshot 30", got.Customer.Name)
	}
	if got := e.readdress(o.ID, 99); got.Customer.Name == nil || *got.Customer.Name != "Marked" || got.Version != 36 {
		t.Errorf("a command answered %+v, want version 36 decided on snapshot 30", got)
	}
	// verify-like check: drop the marked ones; the fold from events is the truth.
	if _, err := eventstore.New(e.pool).DropSnapshots(ctx, o.ID); err != nil {
		t.Fatal(err)
	}
	if _, got, _ := e.get("/orders/" + o.ID); got.Customer.Name == nil || *got.Customer.Name != "Ada Lovelace" || got.Version != 36 {
		t.Errorf("GET without snapshots = %+v", got)
	}
}

func TestUnusableSnapshotsAreIgnoredAndReplaced(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := setupHistory(t, 10, 0)
	o := e.place()
	var want api.Order
	for i := range 24 {
		want = e.readdress(o.ID, i)
	}
	waitForSnapshots(t, e.env, o.ID, 2)
	atTen, _ := e.svc.Order(ctx, authtest.Staff, o.ID, command.At{Version: 12})
	// Snapshot 20: another fold schema version took it (a release before or after this one).
	// Snapshot 10: its state does not decode.
	for _, sql := range []string{
		`UPDATE snapshots SET fold_schema_version = fold_schema_version + 1, state = jsonb_set(state, '{customer,name}', '"Stale"') WHERE stream_id = $1 AND version = 20`,
		`UPDATE snapshots SET state = '{"colour": "red"}' WHERE stream_id = $1 AND version = 10`,
	} {
		if _, err := e.pool.Exec(ctx, sql, o.ID); err != nil {
			t.Fatal(err)
		}
	}
	before := e.metric("snapshot_fallbacks_total")
	if _, got, _ := e.get("/orders/" + o.ID); !same(got, want) {
		t.Errorf("GET with a stale snapshot = %+v, want the fold of the events %+v", got, want)
	}
	if _, got, _ := e.get("/orders/" + o.ID + "?version=12"); !same(got, atTen) {
		t.Errorf("GET ?version=12 with an undecodable snapshot = %+v, want %+v", got, atTen)
	}
	if got := e.metric("snapshot_fallbacks_total"); got != before+2 {
		t.Errorf("snapshot_fallbacks_total = %v, want %v", got, before+2)
	}
	if logs := e.logs.String(); strings.Count(logs, "snapshot ignored") < 2 || !strings.Contains(logs, "fold schema version") {
		t.Errorf("log lacks the ignored snapshots:\n%s", logs)
	}
	// Fresh snapshots replace both (the customer's name in them sealed, as the events hold it).
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		var fresh int
		if err := e.pool.QueryRow(ctx, `SELECT count(*) FROM snapshots WHERE stream_id = $1 AND version IN (10, 20)
			AND fold_schema_version = $2 AND state->'customer'->'name' ? 'sealed' AND state::text NOT LIKE '%Ada%'`,
			o.ID, order.FoldSchemaVersion).Scan(&fresh); err != nil {
			t.Fatal(err)
		}
		if fresh == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of the 2 unusable snapshots replaced after 10 s", fresh)
		}
	}
	now := e.metric("snapshot_fallbacks_total")
	e.get("/orders/" + o.ID)
	e.get("/orders/" + o.ID + "?version=12")
	if got := e.metric("snapshot_fallbacks_total"); got != now {
		t.Errorf("snapshot_fallbacks_total moved from %v to %v once the snapshots were replaced", now, got)
	}
}

func TestSnapshotsOffReadsAndTakesNone(t *testing.T) {
	t.Parallel()
	e := setupHistory(t, 0, 0)
	o := e.place()
	for i := range 12 {
		e.readdress(o.ID, i)
	}
	// A snapshot another configuration left is not read either.
	if _, err := e.pool.Exec(context.Background(), `INSERT INTO snapshots (stream_id, version, fold_schema_version, state)
		VALUES ($1, 5, $2, '{"id": "x"}')`, o.ID, order.FoldSchemaVersion); err != nil {
		t.Fatal(err)
	}
	if _, got, _ := e.get("/orders/" + o.ID); got.Version != 13 || got.ID != o.ID {
		t.Errorf("GET = %+v, want version 13 folded from the events", got)
	}
	time.Sleep(100 * time.Millisecond)
	var n int
	if err := e.pool.QueryRow(context.Background(), "SELECT count(*) FROM snapshots").Scan(&n); err != nil || n != 1 {
		t.Errorf("%d snapshots (%v), want only the one inserted", n, err)
	}
}

// An old replica meeting an event written by a newer release answers a clear, retryable 503 and
// decides nothing; it never answers 500.
func TestNewerSchemaVersionIsARetryable503(t *testing.T) {
	t.Parallel()
	e := setupHistory(t, 1, 0)
	for _, tt := range []struct {
		name, typ string
		version   int
		data      string
	}{
		{"newer schema version", events.TypeOrderShipped, 3, `{"carrier":"DHL","parcels":[{"tracking_number":"1","weight_g":100}]}`},
		{"newer event type", "OrderGiftWrapped", 1, `{"paper":"red"}`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			o := e.place()
			e.do("POST", "/orders/"+o.ID+"/payment", `{"amount": 3998, "currency": "EUR", "reference": "p"}`)
			e.insert(o.ID, 3, tt.typ, tt.version, tt.data)
			before := e.events()
			for _, req := range [][3]string{
				{"POST", "/orders/" + o.ID + "/delivery", `{}`},
				{"POST", "/orders/" + o.ID + "/cancellation", `{"reason": "x"}`},
				{"GET", "/orders/" + o.ID, ""},
				{"GET", "/orders/" + o.ID + "?version=3", ""},
			} {
				res, raw := e.do(req[0], req[1], req[2])
				var p problem.Problem
				if res.StatusCode != 503 || json.Unmarshal(raw, &p) != nil || p.Code != "event_schema_unsupported" || res.Header.Get("Retry-After") == "" {
					t.Errorf("%s %s = %d %s (Retry-After %q), want 503 event_schema_unsupported with Retry-After", req[0], req[1], res.StatusCode, raw, res.Header.Get("Retry-After"))
				}
				if !strings.Contains(p.Detail, tt.typ) {
					t.Errorf("detail %q does not name %s", p.Detail, tt.typ)
				}
			}
			if after := e.events(); after != before {
				t.Errorf("%d events after the refused commands, want %d: nothing decided on a misread state", after, before)
			}
			// What it can read is still readable: the history before, and the audit trail as stored.
			if status, got, _ := e.get("/orders/" + o.ID + "?version=2"); status != 200 || got.Status != "paid" {
				t.Errorf("GET ?version=2 = %d %+v", status, got)
			}
			if trail := e.trail(o.ID, ""); len(trail) != 3 || trail[2].Type != tt.typ || trail[2].SchemaVersion != tt.version {
				t.Errorf("audit trail = %+v", trail)
			}
		})
	}
}

// An event an older release wrote at schema version 1 is read as version 2 (one parcel) by commands
// and reads, and shown as stored in the audit trail.
func TestV1EventIsReadAsV2(t *testing.T) {
	t.Parallel()
	e := setupHistory(t, 2, 0)
	o := e.place()
	e.do("POST", "/orders/"+o.ID+"/payment", `{"amount": 3998, "currency": "EUR", "reference": "p"}`)
	e.insert(o.ID, 3, events.TypeOrderShipped, 1, `{"carrier": "DHL", "tracking_number": "JD-OLD-1"}`)
	status, got, _ := e.get("/orders/" + o.ID)
	if status != 200 || got.Status != "shipped" || got.Shipment == nil || *got.Shipment != (api.Shipment{Carrier: "DHL", TrackingNumber: "JD-OLD-1"}) {
		t.Fatalf("GET = %d %+v, want shipped with DHL JD-OLD-1", status, got)
	}
	if _, at3, _ := e.get("/orders/" + o.ID + "?version=3"); !same(at3, got) {
		t.Errorf("GET ?version=3 = %+v, want %+v", at3, got)
	}
	// A command decides on the upcast state (only a shipped order can be delivered).
	res, raw := e.do("POST", "/orders/"+o.ID+"/delivery", `{}`)
	if res.StatusCode != 200 || !strings.Contains(string(raw), `"status":"delivered"`) {
		t.Fatalf("deliver = %d %s", res.StatusCode, raw)
	}
	trail := e.trail(o.ID, "")
	shipped := trail[2]
	if shipped.SchemaVersion != 1 || !strings.Contains(string(shipped.Data), `"tracking_number":"JD-OLD-1"`) || strings.Contains(string(shipped.Data), "parcels") {
		t.Errorf("audit trail shows %s v%d %s, want it as stored: v1 with tracking_number", shipped.Type, shipped.SchemaVersion, shipped.Data)
	}
	// The snapshot taken after it holds the upcast state.
	waitForSnapshots(t, e.env, o.ID, 2)
	var parcels string
	if err := e.pool.QueryRow(context.Background(), `SELECT state->>'parcels' FROM snapshots WHERE stream_id = $1 ORDER BY version DESC LIMIT 1`, o.ID).Scan(&parcels); err != nil || !strings.Contains(parcels, "JD-OLD-1") {
		t.Errorf("latest snapshot parcels = %s (%v)", parcels, err)
	}
}

// EVENTS_WRITE_VERSION: a writer pinned to version 1 writes what the previous release reads.
func TestWriteVersion(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		writeVersion, want int
		data               string
	}{
		{0, 2, `"parcels":[{"tracking_number":"JD0001"}]`},
		{2, 2, `"parcels":[{"tracking_number":"JD0001"}]`},
		{1, 1, `"tracking_number":"JD0001"`},
	} {
		e := setupHistory(t, 0, tt.writeVersion)
		o := e.place()
		e.do("POST", "/orders/"+o.ID+"/payment", `{"amount": 3998, "currency": "EUR", "reference": "p"}`)
		res, raw := e.do("POST", "/orders/"+o.ID+"/shipment", `{"carrier": "DHL", "tracking_number": "JD0001"}`)
		if res.StatusCode != 200 || !strings.Contains(string(raw), `"tracking_number":"JD0001"`) {
			t.Fatalf("ship = %d %s", res.StatusCode, raw)
		}
		trail := e.trail(o.ID, "")
		if s := trail[2]; s.SchemaVersion != tt.want || !strings.Contains(string(s.Data), tt.data) {
			t.Errorf("write version %d stored %s v%d %s, want v%d with %s", tt.writeVersion, s.Type, s.SchemaVersion, s.Data, tt.want, tt.data)
		}
		if _, got, _ := e.get("/orders/" + o.ID); got.Shipment == nil || got.Shipment.TrackingNumber != "JD0001" {
			t.Errorf("write version %d: GET = %+v", tt.writeVersion, got)
		}
	}
}
