//go:build integration

package e2e_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/orders-oss/orders/internal/auth"
	"github.com/orders-oss/orders/internal/eventstore"
	"github.com/orders-oss/orders/internal/pii"
	"github.com/orders-oss/orders/internal/rebuild"
	"github.com/orders-oss/orders/internal/testenv"
	"github.com/orders-oss/orders/pkg/api"
	"github.com/orders-oss/orders/pkg/publicevents"
)

// TestPersonalDataLeavesNoCopy is the privacy acceptance test (docs/privacy.md), on the real servers
// with the real binaries, each service logged in as its own database role: orders whose customer name,
// email, address and cancellation reason carry a unique marker go through the command API, the relay,
// both topics, both projectors and the query API. Before the erasure, the marker is in no immutable
// copy (events, outbox, snapshots, idempotency records, either topic) and is in both read models. After
// DELETE /customers/{id}/personal-data completes, the marker is nowhere: not in any row of any table
// of the database, not in any document of any index (nor in replaced versions of them: no deleted
// document is left), not in either topic, not in any service's log; the erased orders still answer
// (now, at earlier versions, in their audit trail, from the read models), fold (verify), and rebuild.
func TestPersonalDataLeavesNoCopy(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st := startStack(t)

	var rnd [5]byte
	_, _ = rand.Read(rnd[:])
	marker := "Zq" + hex.EncodeToString(rnd[:]) // letters and digits: no JSON escaping, no tokenizer split
	customer := "cus-e2e-" + hex.EncodeToString(rnd[:2])
	staff := st.token(t, auth.TokenRequest{Subject: "staff-e2e", Role: auth.Staff})
	place := func(cust, name, email, line1, city, key string) api.Order {
		body := fmt.Sprintf(`{"customer": {"id": %q, "name": %q, "email": %q},
			"shipping_address": {"name": %q, "line1": %q, "line2": "", "city": %q, "postal_code": "N1 9GU", "country": "GB"},
			"currency": "EUR", "items": [{"sku": "BK-001", "name": "Notes on the Engine", "quantity": 2, "unit_price": 1999}]}`,
			cust, name, email, name, line1, city)
		return st.call(t, staff, "POST", st.command+"/orders", body, 201, "Idempotency-Key", key)
	}
	// Three orders of the customer: one through its whole life, one readdressed and cancelled with a
	// reason, one only placed; and one of another customer, which keeps its data.
	// (Idempotency keys are the client's opaque ids, stored as given: never personal data.)
	a := place(customer, "Ada "+marker, "ada."+strings.ToLower(marker)+"@example.com", "1 "+marker+" Street", marker+"ville", "key-a")
	st.call(t, staff, "POST", st.command+"/orders/"+a.ID+"/payment", `{"amount": 3998, "currency": "EUR", "reference": "pay-a"}`, 200)
	st.call(t, staff, "POST", st.command+"/orders/"+a.ID+"/shipment", `{"carrier": "DHL", "tracking_number": "TRK-A"}`, 200)
	a = st.call(t, staff, "POST", st.command+"/orders/"+a.ID+"/delivery", `{}`, 200, "Idempotency-Key", "key-deliver")
	b := place(customer, "Ada "+marker, "ada."+strings.ToLower(marker)+"@example.com", "1 "+marker+" Street", "London", "key-b")
	st.call(t, staff, "PUT", st.command+"/orders/"+b.ID+"/shipping-address",
		fmt.Sprintf(`{"name": "A %s", "line1": "9 %s Road", "line2": "Flat %s", "city": "Paris", "postal_code": "75001", "country": "FR"}`, marker, marker, marker), 200)
	b = st.call(t, staff, "POST", st.command+"/orders/"+b.ID+"/cancellation", fmt.Sprintf(`{"reason": "moving to %s Road"}`, marker), 200)
	c := place(customer, "Ada "+marker, "ada."+strings.ToLower(marker)+"@example.com", "1 "+marker+" Street", "London", "key-c")
	control := place("cus-control-"+hex.EncodeToString(rnd[:2]), "Grace Control", "grace@example.com", "2 Harbour Rd", "Arlington", "key-d")
	mine := []api.Order{a, b, c}

	// The read models catch up: the query API serves every order at its final version, and search
	// finds the customer's three by the marker.
	for _, o := range append(mine, control) {
		st.call(t, staff, "GET", fmt.Sprintf("%s/orders/%s?min_version=%d", st.query, o.ID, o.Version), "", 200)
	}
	st.eventually(t, 60*time.Second, "search finds the marker in the customer's 3 orders", func() bool {
		return st.searchTotal(t, staff, marker) == 3
	})

	// Before the erasure: the marker is in no immutable copy, and is in both read models.
	for _, table := range []string{"events", "outbox", "snapshots", "idempotency_keys"} {
		if n := st.rowsHolding(t, table, marker); n != 0 {
			t.Errorf("before the erasure, %d rows of %s hold the marker", n, table)
		}
	}
	for table, atLeast := range map[string]int{"events": 9, "snapshots": 1, "idempotency_keys": 5, "pii_data_keys": 2} {
		if n := st.count(t, table); n < atLeast {
			t.Errorf("%s holds %d rows, want at least %d: the checks above would prove nothing", table, n, atLeast)
		}
	}
	internal, public := st.readTopic(t, st.topic), st.readTopic(t, st.publicTopic)
	for name, recs := range map[string][][]byte{st.topic: internal, st.publicTopic: public} {
		if n := holding(recs, marker); n != 0 {
			t.Errorf("before the erasure, %d records of %s hold the marker", n, name)
		}
	}
	if len(internal) < 9 {
		t.Errorf("the events topic holds %d records, want the 9 events", len(internal))
	}
	st.checkPublicTopic(t, public, append(mine, control))
	if n := st.rowsHolding(t, "orders_read.orders", marker); n != 3 {
		t.Errorf("the read table holds the marker in %d orders, want 3 (it serves and searches the personal data)", n)
	}

	// The erasure.
	res, raw := st.do(t, staff, "DELETE", st.command+"/customers/"+url.PathEscape(customer)+"/personal-data", "")
	if res.StatusCode != 202 || res.Header.Get("Location") == "" {
		t.Fatalf("DELETE personal data = %d %s", res.StatusCode, raw)
	}
	loc := st.command + res.Header.Get("Location")
	st.eventually(t, 60*time.Second, "the erasure completes", func() bool {
		_, raw := st.do(t, staff, "GET", loc, "")
		return strings.Contains(string(raw), `"status":"completed"`)
	})
	// The read models follow: the orders erased, search finds nothing by the marker, and the search
	// index keeps no replaced version of a document.
	for _, o := range mine {
		st.eventually(t, 60*time.Second, "the read model erases order "+o.ID, func() bool {
			_, raw := st.do(t, staff, "GET", st.query+"/orders/"+o.ID, "")
			return erasedJSON(raw)
		})
	}
	st.eventually(t, 60*time.Second, "search no longer finds the marker", func() bool { return st.searchTotal(t, staff, marker) == 0 })
	// The replaced versions of the documents go too: OpenSearch lets go of them once it renewed its
	// retention lease (every 30 s), and the search projector expunges them then (searchindex.Expunger).
	st.eventually(t, 150*time.Second, "no deleted document is left in the test's indices", func() bool { return st.deletedDocs(t) == 0 })

	// The erased orders still answer: now, at every earlier version, in the audit trail.
	for _, o := range mine {
		if _, raw := st.do(t, staff, "GET", st.command+"/orders/"+o.ID, ""); !erasedJSON(raw) {
			t.Errorf("command GET %s = %s, want the personal data erased", o.ID, raw)
		}
		for v := int64(1); v <= o.Version; v++ {
			if _, raw := st.do(t, staff, "GET", fmt.Sprintf("%s/orders/%s?version=%d", st.command, o.ID, v), ""); !erasedJSON(raw) {
				t.Errorf("command GET %s?version=%d = %s, want the personal data erased", o.ID, v, raw)
			}
		}
		if _, raw := st.do(t, staff, "GET", st.command+"/orders/"+o.ID+"/events", ""); !strings.Contains(string(raw), "PersonalDataErased") {
			t.Errorf("audit trail of %s lacks the erasure: %s", o.ID, raw)
		}
	}
	if _, raw := st.do(t, staff, "GET", st.query+"/orders/"+control.ID, ""); !strings.Contains(string(raw), `"name":"Grace Control"`) {
		t.Errorf("another customer's order = %s, want it untouched", raw)
	}
	// An idempotent retry answers the first outcome, erased.
	res, raw = st.do(t, staff, "POST", st.command+"/orders/"+a.ID+"/delivery", `{}`, "Idempotency-Key", "key-deliver")
	if res.StatusCode != 200 || res.Header.Get("Idempotent-Replayed") != "true" || !erasedJSON(raw) {
		t.Errorf("retry of the delivery = %d %s", res.StatusCode, raw)
	}

	// They fold and rebuild: verify both read models against the store (and the snapshots, and the hash
	// chains), rebuild both into new generations, verify again.
	clients := rebuild.Clients{Brokers: st.brokers, Pool: st.owner, OpenSearch: testenv.OpenSearch(t), Keys: st.keys}
	verify := func(when string) {
		for _, target := range rebuild.Targets {
			r, err := rebuild.VerifyTarget(ctx, clients, target, st.alias, nil)
			if err != nil || !r.OK() || r.Orders != 4 {
				t.Errorf("%s: verify %s = %+v, %v; want the 4 orders, no difference", when, target, r, err)
			}
		}
		if r, err := rebuild.VerifySnapshots(ctx, eventstore.New(st.owner), st.keys, nil); err != nil || !r.OK() {
			t.Errorf("%s: verify snapshots = %+v, %v", when, r, err)
		}
		if r, err := eventstore.New(st.owner).VerifyChains(ctx, ""); err != nil || len(r.Breaks) != 0 || r.Streams != 4 {
			t.Errorf("%s: verify events = %+v, %v; want 4 intact chains", when, r, err)
		}
	}
	verify("after the erasure")
	for _, target := range rebuild.Targets {
		res, err := rebuild.Rebuild(ctx, clients, rebuild.Options{Target: target, Topic: st.topic, Alias: st.alias,
			LiveGroup: st.groups[target], CatchUpLag: 1000}, nil)
		if err != nil {
			t.Fatalf("rebuild %s: %v", target, err)
		}
		t.Logf("rebuilt %s into %s (%d events)", target, res.Generation, res.Events)
	}
	verify("after the rebuilds")
	if n := st.searchTotal(t, staff, marker); n != 0 {
		t.Errorf("after the rebuild, search finds the marker in %d orders", n)
	}
	for _, o := range mine {
		if _, raw := st.do(t, staff, "GET", st.query+"/orders/"+o.ID, ""); !erasedJSON(raw) {
			t.Errorf("after the rebuild, query GET %s = %s, want the personal data erased", o.ID, raw)
		}
	}

	// Nothing anywhere holds the marker: every table of the database, every index of the test (and
	// their replaced versions), both topics, every service's log.
	for _, table := range st.tables(t) {
		if n := st.rowsHolding(t, table, marker); n != 0 {
			t.Errorf("after the erasure, %d rows of %s hold the marker", n, table)
		}
	}
	// (The rebuilt index was filled after the keys were deleted: no version of a document of it ever
	// held the marker. The index the rebuild replaced is deleted.)
	for index, docs := range st.indexDocuments(t) {
		if bytes.Contains(bytes.ToLower(docs), []byte(strings.ToLower(marker))) {
			t.Errorf("after the erasure, the index %s holds the marker", index)
		}
	}
	for _, topic := range []string{st.topic, st.publicTopic} {
		if n := holding(st.readTopic(t, topic), marker); n != 0 {
			t.Errorf("after the erasure, %d records of %s hold the marker", n, topic)
		}
	}
	for name, log := range st.logs(t) {
		if len(log) == 0 {
			t.Errorf("the log of %s is empty: its scan proves nothing", name)
		}
		if bytes.Contains(bytes.ToLower(log), []byte(strings.ToLower(marker))) {
			t.Errorf("the log of %s holds the marker", name)
		}
	}
}

func erasedJSON(raw []byte) bool {
	var o api.Order
	return json.Unmarshal(raw, &o) == nil && o.Customer.Name == nil && o.Customer.Email == nil && o.ShippingAddress == nil &&
		o.PersonalData == api.PersonalDataErased && o.Customer.ID != "" && len(o.Items) > 0 && (o.Cancellation == nil || o.Cancellation.Reason == nil)
}

func holding(recs [][]byte, marker string) int {
	n := 0
	for _, r := range recs {
		if bytes.Contains(bytes.ToLower(r), []byte(strings.ToLower(marker))) {
			n++
		}
	}
	return n
}

// stack is the five services, built from this tree and run as processes on the test's own database,
// topics and indices, each logged in as its own role.
type stack struct {
	owner                     *pgxpool.Pool
	keys                      *pii.Keyring
	dbURL                     string
	brokers                   []string
	topic, publicTopic, alias string
	groups                    map[rebuild.Target]string
	command, query            string // base URLs
	devKey                    auth.DevKey
	logDir                    string
	services                  []string
}

func startStack(t *testing.T) *stack {
	t.Helper()
	ctx := context.Background()
	st := &stack{dbURL: testenv.PostgresURL(t), brokers: testenv.KafkaBrokers(t), topic: testenv.Topic(t, 3), publicTopic: testenv.Topic(t, 3),
		logDir: t.TempDir()}
	owner, err := pgxpool.New(ctx, st.dbURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(owner.Close)
	st.owner = owner
	// ordersctl migrate: the event store's migrations as the owner (the services may not).
	if err := eventstore.Migrate(ctx, owner); err != nil {
		t.Fatal(err)
	}
	master, masterFile := testenv.MasterKey(t)
	st.keys = pii.New(owner, master, pii.Options{})
	prefix := testenv.IndexPrefix(t)
	st.alias = prefix + "-orders"
	authDir := t.TempDir()
	if st.devKey, err = auth.EnsureDevKey(authDir); err != nil {
		t.Fatal(err)
	}
	name := testenv.Name(t)
	st.groups = map[rebuild.Target]string{rebuild.Orders: name + "-orders", rebuild.Search: name + "-search"}

	bin := t.TempDir()
	build := exec.Command("go", "build", "-o", bin+"/", "./services/command", "./services/outbox-relay", "./services/projector-orders",
		"./services/projector-search", "./services/query")
	build.Dir = ".."
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	common := []string{"PATH=" + os.Getenv("PATH"), "AUTH_MODE=dev", "AUTH_DEV_DIR=" + authDir, "KAFKA_BROKERS=" + strings.Join(st.brokers, ","),
		"OPENSEARCH_URL=" + testenv.OpenSearchURL(t), "EVENTS_TOPIC=" + st.topic, "PII_MASTER_KEY_FILE=" + masterFile, "PII_KEY_CACHE_TTL=1s",
		"HTTP_DRAIN_DELAY=0s", "SEARCH_INDEX_ALIAS=" + st.alias, "SEARCH_INDEX=" + prefix + "-orders-v1"}
	// A service logs in as its role: the owner's credentials with the role set at connection start
	// (as testenv.PostgresAs does), so Postgres checks every statement against the role's rights.
	as := func(role string) string { return "DATABASE_URL=" + st.dbURL + "&options=-c%20role%3D" + role }
	run := func(service string, env ...string) string {
		addr := testenv.FreeAddr(t)
		cmd := exec.Command(filepath.Join(bin, service))
		cmd.Env = append(append(common, env...), "HTTP_ADDR="+addr)
		log, err := os.Create(filepath.Join(st.logDir, service+".log"))
		if err != nil {
			t.Fatal(err)
		}
		cmd.Stdout, cmd.Stderr = log, log
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		exited := make(chan struct{})
		go func() { _ = cmd.Wait(); close(exited) }()
		t.Cleanup(func() {
			_ = cmd.Process.Signal(os.Interrupt)
			select {
			case <-exited:
			case <-time.After(15 * time.Second):
				_ = cmd.Process.Kill()
				<-exited
			}
			log.Close()
		})
		st.services = append(st.services, service)
		base := "http://" + addr
		ready := func() bool {
			res, err := http.Get(base + "/readyz")
			if err != nil {
				return false
			}
			res.Body.Close()
			return res.StatusCode == 200
		}
		for deadline := time.Now().Add(90 * time.Second); !ready(); time.Sleep(100 * time.Millisecond) {
			select {
			case <-exited:
				out, _ := os.ReadFile(log.Name())
				t.Fatalf("%s exited; its log:\n%s", service, out)
			default:
			}
			if time.Now().After(deadline) {
				out, _ := os.ReadFile(log.Name())
				t.Fatalf("%s is not ready after 90 s; its log:\n%s", service, out)
			}
		}
		return base
	}
	st.command = run("command", as("orders_command"), "SNAPSHOT_EVERY=2", "PII_ERASURE_POLL=200ms")
	run("outbox-relay", as("orders_relay"), "PUBLIC_EVENTS_TOPIC="+st.publicTopic, "EVENTS_TOPIC_PARTITIONS=3")
	run("projector-orders", as("orders_projector"), "PROJECTOR_GROUP="+st.groups[rebuild.Orders], "PROJECTOR_INSTANCE_ID="+name+"-o")
	run("projector-search", as("orders_keyreader"), "PROJECTOR_GROUP="+st.groups[rebuild.Search], "PROJECTOR_INSTANCE_ID="+name+"-s")
	st.query = run("query", as("orders_query"))
	return st
}

func (st *stack) token(t *testing.T, req auth.TokenRequest) string {
	t.Helper()
	req.TTL = time.Hour
	tok, err := st.devKey.Sign(req)
	if err != nil {
		t.Fatal(err)
	}
	return "Bearer " + tok
}

func (st *stack) do(t *testing.T, bearer, method, u, body string, headers ...string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, u, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", bearer)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	return res, raw
}

func (st *stack) call(t *testing.T, bearer, method, u, body string, status int, headers ...string) api.Order {
	t.Helper()
	res, raw := st.do(t, bearer, method, u, body, headers...)
	var o api.Order
	if res.StatusCode != status || json.Unmarshal(raw, &o) != nil {
		t.Fatalf("%s %s = %d %s, want %d", method, u, res.StatusCode, raw, status)
	}
	return o
}

func (st *stack) eventually(t *testing.T, within time.Duration, what string, ok func() bool) {
	t.Helper()
	for deadline := time.Now().Add(within); !ok(); time.Sleep(100 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("not within %s: %s", within, what)
		}
	}
}

func (st *stack) searchTotal(t *testing.T, bearer, q string) int64 {
	t.Helper()
	_, raw := st.do(t, bearer, "GET", st.query+"/orders/search?q="+url.QueryEscape(q), "")
	var got struct {
		Total int64 `json:"total"`
	}
	if err := json.Unmarshal(raw, &got); err != nil {
		return -1
	}
	return got.Total
}

// tables lists every table of the test's database.
func (st *stack) tables(t *testing.T) []string {
	t.Helper()
	rows, err := st.owner.Query(context.Background(), `SELECT format('%I.%I', schemaname, tablename) FROM pg_tables
		WHERE schemaname NOT IN ('pg_catalog', 'information_schema') ORDER BY 1`)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			t.Fatal(err)
		}
		out = append(out, n)
	}
	if len(out) < 10 {
		t.Fatalf("the database has %d tables: %v", len(out), out)
	}
	return out
}

// rowsHolding counts the rows of a table whose text holds the marker, as text or as the hex of a
// bytea (a row's text shows bytea as hex).
func (st *stack) rowsHolding(t *testing.T, table, marker string) int {
	t.Helper()
	var n int
	err := st.owner.QueryRow(context.Background(), fmt.Sprintf(`SELECT count(*) FROM %s x WHERE x::text ILIKE '%%' || $1 || '%%'
		OR x::text ILIKE '%%' || $2 || '%%'`, table), marker, hex.EncodeToString([]byte(marker))).Scan(&n)
	if err != nil {
		t.Fatalf("scan %s: %v", table, err)
	}
	return n
}

func (st *stack) count(t *testing.T, table string) int {
	t.Helper()
	var n int
	if err := st.owner.QueryRow(context.Background(), "SELECT count(*) FROM "+table).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// readTopic returns every record of a topic (key, headers and value), read from the start to its end.
func (st *stack) readTopic(t *testing.T, topic string) [][]byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ends, err := testenv.Admin(t).ListEndOffsets(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	want := int64(0)
	ends.Each(func(o kadm.ListedOffset) { want += o.Offset })
	cl, err := kgo.NewClient(kgo.SeedBrokers(st.brokers...), kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	var out [][]byte
	for int64(len(out)) < want {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("read %d of %d records of %s", len(out), want, topic)
		}
		fs.EachRecord(func(r *kgo.Record) {
			b := append(append([]byte{}, r.Key...), r.Value...)
			for _, h := range r.Headers {
				b = append(append(b, h.Key...), h.Value...)
			}
			out = append(out, b)
		})
	}
	return out
}

// checkPublicTopic: the public topic holds each order's public facts, and no other kind of record.
func (st *stack) checkPublicTopic(t *testing.T, recs [][]byte, orders []api.Order) {
	t.Helper()
	types := map[string]int{}
	for _, r := range recs {
		for _, typ := range publicevents.Types {
			if bytes.Contains(r, []byte(`"type":"`+typ+`"`)) {
				types[typ]++
			}
		}
	}
	want := map[string]int{publicevents.TypeOrderPlaced: len(orders), publicevents.TypeOrderPaid: 1, publicevents.TypeOrderShipped: 1,
		publicevents.TypeOrderDelivered: 1, publicevents.TypeOrderCancelled: 1}
	for typ, n := range want {
		if types[typ] < n {
			t.Errorf("the public topic holds %d %s records, want at least %d", types[typ], typ, n)
		}
	}
}

// indexDocuments returns, per index of the test (the alias's generations and the parking), every
// document it holds.
func (st *stack) indexDocuments(t *testing.T) map[string][]byte {
	t.Helper()
	prefix := strings.TrimSuffix(st.alias, "-orders")
	base := testenv.OpenSearchURL(t)
	res, err := http.Get(base + "/_cat/indices/" + prefix + "*?format=json&expand_wildcards=all&h=index")
	if err != nil {
		t.Fatal(err)
	}
	var idx []struct {
		Index string `json:"index"`
	}
	err = json.NewDecoder(res.Body).Decode(&idx)
	res.Body.Close()
	if err != nil || len(idx) == 0 {
		t.Fatalf("list the test's indices: %v (%d)", err, len(idx))
	}
	out := map[string][]byte{}
	for _, i := range idx {
		res, err := http.Post(base+"/"+i.Index+"/_search?size=10000", "application/json", strings.NewReader(`{"query": {"match_all": {}}}`))
		if err != nil {
			t.Fatal(err)
		}
		out[i.Index], _ = io.ReadAll(res.Body)
		res.Body.Close()
	}
	return out
}

// deletedDocs is how many deleted (replaced) documents the test's indices still keep on disk.
func (st *stack) deletedDocs(t *testing.T) int64 {
	t.Helper()
	prefix := strings.TrimSuffix(st.alias, "-orders")
	res, err := http.Get(testenv.OpenSearchURL(t) + "/" + prefix + "*/_stats/docs?expand_wildcards=all")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var stats struct {
		All struct {
			Total struct {
				Docs struct {
					Deleted int64 `json:"deleted"`
				} `json:"docs"`
			} `json:"total"`
		} `json:"_all"`
	}
	if err := json.NewDecoder(res.Body).Decode(&stats); err != nil {
		t.Fatal(err)
	}
	return stats.All.Total.Docs.Deleted
}

// logs returns what each service wrote so far.
func (st *stack) logs(t *testing.T) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	for _, s := range st.services {
		b, err := os.ReadFile(filepath.Join(st.logDir, s+".log"))
		if err != nil {
			t.Fatal(err)
		}
		out[s] = b
	}
	return out
}
