//go:build integration

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/opensearch-project/opensearch-go/v2"
	"github.com/opensearch-project/opensearch-go/v2/opensearchapi"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/orders-oss/orders/internal/command"
	"github.com/orders-oss/orders/internal/eventstore"
	"github.com/orders-oss/orders/internal/projection"
	"github.com/orders-oss/orders/internal/readmodel"
	"github.com/orders-oss/orders/internal/relay"
	"github.com/orders-oss/orders/internal/searchindex"
	"github.com/orders-oss/orders/internal/testenv"
	"github.com/orders-oss/orders/pkg/api"
	commandapi "github.com/orders-oss/orders/services/command/httpapi"
)

// liveStack is the whole write path and both live projectors, in process, on the test's own
// database, topic and indices.
type liveStack struct {
	t       *testing.T
	pool    *pgxpool.Pool
	brokers []string
	topic   string
	osc     *opensearch.Client
	alias   string
	index   string // the first index behind the alias
	command *httptest.Server
	env     map[string]string
	http    *http.Client
}

var quietLog = slog.New(slog.NewTextHandler(io.Discard, nil))

func newLiveStack(t *testing.T) *liveStack {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	dbURL := testenv.PostgresURL(t)
	pool, err := pgxpool.New(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	if err := eventstore.Migrate(ctx, pool); err != nil {
		t.Fatal(err)
	}
	if _, err := readmodel.Ensure(ctx, pool); err != nil {
		t.Fatal(err)
	}
	s := &liveStack{t: t, pool: pool, brokers: testenv.KafkaBrokers(t), topic: testenv.Topic(t, 3), osc: testenv.OpenSearch(t),
		http: &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 16}}}
	prefix := testenv.IndexPrefix(t)
	s.alias, s.index = prefix+"-orders", prefix+"-orders-v1"
	if err := searchindex.New(s.osc, s.alias).Ensure(ctx, s.index); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { // the rebuilds create orders-v2 and its parking; testenv only knows the prefix
		if res, err := (opensearchapi.IndicesDeleteRequest{Index: []string{prefix + "*"}}).Do(context.Background(), s.osc); err == nil {
			res.Body.Close()
		}
	})
	s.command = httptest.NewServer(commandapi.New(commandapi.Config{Commands: &command.Service{Store: eventstore.New(pool), MaxRetries: 5}, Log: quietLog, BodyLimit: "64KB", Ready: pool.Ping}))
	t.Cleanup(s.command.Close)
	producer, err := kgo.NewClient(kgo.SeedBrokers(s.brokers...), kgo.RequiredAcks(kgo.AllISRAcks()), kgo.ProducerLinger(time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	r := relay.New(relay.Config{Pool: pool, Client: producer, Topic: s.topic, Log: quietLog})
	done := make(chan struct{})
	go func() { defer close(done); _ = r.Run(ctx, relay.DefaultPolling) }()
	t.Cleanup(func() { cancel(); <-done; producer.Close() })
	name := testenv.Name(t)
	s.env = map[string]string{"DATABASE_URL": dbURL, "KAFKA_BROKERS": strings.Join(s.brokers, ","), "OPENSEARCH_URL": testenv.OpenSearchURL(t),
		"EVENTS_TOPIC": s.topic, "SEARCH_INDEX_ALIAS": s.alias, "PROJECTOR_ORDERS_GROUP": name + "-orders", "PROJECTOR_SEARCH_GROUP": name + "-search"}
	return s
}

// startProjectors runs both live projectors as the services do; the returned func stops them (their
// members leave the groups).
func (s *liveStack) startProjectors() (stop func()) {
	s.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	gen, err := readmodel.Live(ctx, s.pool)
	if err != nil {
		s.t.Fatal(err)
	}
	tpark, err := readmodel.NewParking(ctx, s.pool, gen)
	if err != nil {
		s.t.Fatal(err)
	}
	spark, err := searchindex.NewParking(ctx, s.osc, s.alias+"-parked")
	if err != nil {
		s.t.Fatal(err)
	}
	var wg sync.WaitGroup
	var clients []*kgo.Client
	for _, l := range []*projection.Loop{
		{Handler: readmodel.Handler{Pool: s.pool, OnGeneration: tpark.Use}, Parking: tpark, Group: s.env["PROJECTOR_ORDERS_GROUP"]},
		{Handler: searchindex.Handler{Index: searchindex.New(s.osc, s.alias)}, Parking: spark, Group: s.env["PROJECTOR_SEARCH_GROUP"], GapGrace: 10 * time.Second},
	} {
		cl, err := kgo.NewClient(projection.ConsumerOptions(s.brokers, s.topic, l.Group)...)
		if err != nil {
			s.t.Fatal(err)
		}
		clients = append(clients, cl)
		l.Client, l.Topic, l.Log, l.Metrics = cl, s.topic, quietLog, projection.NewMetrics()
		wg.Add(1)
		go func() { defer wg.Done(); _ = l.Run(ctx) }()
	}
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			wg.Wait()
			for _, cl := range clients {
				cl.Close()
			}
		})
	}
	s.t.Cleanup(stop)
	return stop
}

func (s *liveStack) post(path, body string) (api.Order, error) {
	req, _ := http.NewRequest(http.MethodPost, s.command.URL+path, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	res, err := s.http.Do(req)
	if err != nil {
		return api.Order{}, err
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	if res.StatusCode >= 300 {
		return api.Order{}, fmt.Errorf("POST %s = %d %s", path, res.StatusCode, raw)
	}
	var o api.Order
	return o, json.Unmarshal(raw, &o)
}

// shipOrder places, pays and ships an order (version 3).
func (s *liveStack) shipOrder(i int) (string, error) {
	o, err := s.post("/orders", fmt.Sprintf(`{"customer": {"id": "cus_%d", "name": "Customer %d", "email": "c%d@example.com"},
		"shipping_address": {"name": "A", "line1": "1 St", "city": "London", "postal_code": "N1", "country": "GB"},
		"currency": "EUR", "items": [{"sku": "BK-%d", "name": "Notes", "quantity": 2, "unit_price": 1999}]}`, i%50, i, i, i%7))
	if err != nil {
		return "", err
	}
	if _, err := s.post("/orders/"+o.ID+"/payment", `{"amount": 3998, "currency": "EUR", "reference": "p"}`); err != nil {
		return "", err
	}
	_, err = s.post("/orders/"+o.ID+"/shipment", fmt.Sprintf(`{"carrier": "DHL", "tracking_number": "JD%06d"}`, i))
	return o.ID, err
}

func (s *liveStack) ctl(args ...string) (string, error) {
	var out bytes.Buffer
	err := run(context.Background(), args, func(k string) string { return s.env[k] }, &out, &out)
	return out.String(), err
}

// verifyEventually runs ordersctl verify until it reports no difference (the live projectors catch
// up with the last commands), failing after 60 s with the last report.
func (s *liveStack) verifyEventually(target string) {
	s.t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		out, err := s.ctl("verify", target)
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("verify %s after 60 s: %v\n%s", target, err, out)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

func (s *liveStack) tableVersion(ctx context.Context, id string) (int64, error) {
	var v int64
	err := s.pool.QueryRow(ctx, "SELECT version FROM orders_read.orders WHERE id = $1", id).Scan(&v)
	return v, err
}

func TestRebuildUnderLoadVerifiesClean(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := newLiveStack(t)
	s.startProjectors()
	var ids []string
	for i := range 120 {
		id, err := s.shipOrder(i)
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	s.verifyEventually("orders")
	s.verifyEventually("search")

	// Corrupt both models: delete 5 orders, change a field of 5 others.
	deleted, changed, watched := ids[:5], ids[5:10], ids[10:]
	for _, id := range deleted {
		if _, err := s.pool.Exec(ctx, "DELETE FROM orders_read.orders WHERE id = $1", id); err != nil {
			t.Fatal(err)
		}
		res, err := opensearchapi.DeleteRequest{Index: s.index, DocumentID: id, Refresh: "true"}.Do(ctx, s.osc)
		if err != nil || res.IsError() {
			t.Fatalf("delete document: %v %v", err, res)
		}
		res.Body.Close()
	}
	ix := searchindex.New(s.osc, s.alias)
	for _, id := range changed {
		if _, err := s.pool.Exec(ctx, `UPDATE orders_read.orders SET doc = jsonb_set(doc, '{customer,name}', '"Mallory"') WHERE id = $1`, id); err != nil {
			t.Fatal(err)
		}
		docs, err := ix.Get(ctx, []string{id})
		if err != nil {
			t.Fatal(err)
		}
		d := docs[id]
		d.Customer.Name = "Mallory"
		body, _ := json.Marshal(d)
		res, err := opensearchapi.IndexRequest{Index: s.index, DocumentID: id, Body: bytes.NewReader(body), Refresh: "true"}.Do(ctx, s.osc)
		if err != nil || res.IsError() {
			t.Fatalf("overwrite document: %v %v", err, res)
		}
		res.Body.Close()
	}
	for _, target := range []string{"orders", "search"} {
		if out, err := s.ctl("verify", target); err == nil || !strings.Contains(out, ": 10 differences") {
			t.Fatalf("verify %s of the corrupted model = %v, want 10 differences\n%s", target, err, out)
		}
	}

	// Load: orders keep being placed, paid and shipped during the rebuilds.
	loadCtx, stopLoad := context.WithCancel(ctx)
	var loadWG sync.WaitGroup
	var placed, loadErrs atomic.Int64
	for w := range 4 {
		loadWG.Add(1)
		go func() {
			defer loadWG.Done()
			for i := 1000 * (w + 1); loadCtx.Err() == nil; i++ {
				if _, err := s.shipOrder(i); err != nil && loadCtx.Err() == nil {
					loadErrs.Add(1)
					t.Errorf("load: %v", err)
					return
				}
				placed.Add(1)
			}
		}()
	}
	// Readers: every watched order (shipped, version 3) must be readable at version 3 from both
	// models at every moment of the rebuilds.
	var reads, badReads atomic.Int64
	var firstBad atomic.Value
	for range 2 {
		loadWG.Add(1)
		go func() {
			defer loadWG.Done()
			for loadCtx.Err() == nil {
				id := watched[rand.IntN(len(watched))]
				v, err := s.tableVersion(loadCtx, id)
				if loadCtx.Err() != nil {
					return
				}
				docs, serr := ix.Get(loadCtx, []string{id})
				if loadCtx.Err() != nil {
					return
				}
				reads.Add(1)
				if err != nil || v != 3 || serr != nil || docs[id].Version != 3 {
					badReads.Add(1)
					firstBad.CompareAndSwap(nil, fmt.Sprintf("order %s: table version %d (%v), index version %d (%v)", id, v, err, docs[id].Version, serr))
				}
			}
		}()
	}
	time.Sleep(time.Second)
	for _, target := range []string{"orders", "search"} {
		out, err := s.ctl("projector", "rebuild", target)
		if err != nil {
			stopLoad()
			loadWG.Wait()
			t.Fatalf("rebuild %s: %v\n%s", target, err, out)
		}
		if !strings.Contains(out, "caught up: reads switched to") {
			t.Errorf("rebuild %s output lacks the switch:\n%s", target, out)
		}
	}
	time.Sleep(time.Second)
	stopLoad()
	loadWG.Wait()
	if placed.Load() == 0 || loadErrs.Load() > 0 {
		t.Fatalf("load during the rebuilds: %d orders shipped, %d errors", placed.Load(), loadErrs.Load())
	}
	if reads.Load() == 0 || badReads.Load() > 0 {
		t.Fatalf("%d of %d reads during the rebuilds failed or were stale; first: %v", badReads.Load(), reads.Load(), firstBad.Load())
	}
	t.Logf("%d orders shipped and %d reads during the rebuilds", placed.Load(), reads.Load())

	s.verifyEventually("orders")
	s.verifyEventually("search")
	gens, err := readmodel.Generations(ctx, s.pool)
	if err != nil {
		t.Fatal(err)
	}
	if len(gens) != 2 || gens[0].State != "retired" || gens[1].State != "live" {
		t.Errorf("generations after the rebuild = %+v, want 1 retired and 2 live", gens)
	}
	if targets, err := ix.Targets(ctx); err != nil || len(targets) != 1 || targets[0] != strings.TrimSuffix(s.index, "-v1")+"-v2" {
		t.Errorf("alias points at %v (%v), want the v2 index only", targets, err)
	}
	// The live projector writes to the new generation: a new order shows up in both models.
	id, err := s.shipOrder(99999)
	if err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		v, _ := s.tableVersion(ctx, id)
		docs, _ := ix.Get(ctx, []string{id})
		if v == 3 && docs[id].Version == 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("an order placed after the rebuild: table version %d, index version %d after 30 s", v, docs[id].Version)
		}
	}
}

func TestRebuildRefusesLostHistoryUnlessBackfill(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := newLiveStack(t)
	stop := s.startProjectors()
	for i := range 40 {
		if _, err := s.shipOrder(i); err != nil {
			t.Fatal(err)
		}
	}
	s.verifyEventually("orders")
	s.verifyEventually("search")
	stop()
	// The topic loses its early records: half of each partition.
	adm := testenv.Admin(t)
	ends, err := adm.ListEndOffsets(ctx, s.topic)
	if err != nil {
		t.Fatal(err)
	}
	var del kadm.Offsets
	ends.Each(func(o kadm.ListedOffset) { del.AddOffset(s.topic, o.Partition, o.Offset/2, -1) })
	if _, err := adm.DeleteRecords(ctx, del); err != nil {
		t.Fatal(err)
	}
	for _, target := range []string{"orders", "search"} {
		out, err := s.ctl("projector", "rebuild", target)
		if err == nil || !strings.Contains(err.Error(), "refusing to rebuild") || !strings.Contains(err.Error(), "--backfill") {
			t.Fatalf("rebuild %s of a topic that lost records = %v, want a refusal naming --backfill\n%s", target, err, out)
		}
	}
	if gens, err := readmodel.Generations(ctx, s.pool); err != nil || len(gens) != 1 {
		t.Fatalf("generations after a refused rebuild = %+v (%v), want the live one only", gens, err)
	}
	for _, target := range []string{"orders", "search"} {
		out, err := s.ctl("projector", "rebuild", target, "--backfill")
		if err != nil {
			t.Fatalf("rebuild %s --backfill: %v\n%s", target, err, out)
		}
		if !strings.Contains(out, "backfill from the event store") {
			t.Errorf("rebuild %s --backfill output lacks the backfill:\n%s", target, out)
		}
		if out, err := s.ctl("verify", target); err != nil {
			t.Fatalf("verify %s after the backfilled rebuild: %v\n%s", target, err, out)
		}
	}
}

func TestInPlaceRebuildAfterManualReset(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := newLiveStack(t)
	stop := s.startProjectors()
	var ids []string
	for i := range 40 {
		id, err := s.shipOrder(i)
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	s.verifyEventually("orders")
	s.verifyEventually("search")
	// In place needs the group without members.
	if out, err := s.ctl("projector", "rebuild", "orders", "--in-place"); err == nil || !strings.Contains(err.Error(), "running members") {
		t.Fatalf("in-place rebuild with the projector running = %v, want a refusal\n%s", err, out)
	}
	stop()
	// What an operator does with Kafka's tool: kafka-consumer-groups --reset-offsets --to-earliest
	// --execute on the stopped groups. Alone it rebuilds nothing (the version guard skips every
	// event); the corruption stays.
	adm := testenv.Admin(t)
	starts, err := adm.ListStartOffsets(ctx, s.topic)
	if err != nil {
		t.Fatal(err)
	}
	for _, g := range []string{s.env["PROJECTOR_ORDERS_GROUP"], s.env["PROJECTOR_SEARCH_GROUP"]} {
		if _, err := adm.CommitOffsets(ctx, g, starts.Offsets()); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.pool.Exec(ctx, "DELETE FROM orders_read.orders WHERE id = ANY($1::uuid[])", ids[:3]); err != nil {
		t.Fatal(err)
	}
	for _, id := range ids[:3] {
		res, err := opensearchapi.DeleteRequest{Index: s.index, DocumentID: id, Refresh: "true"}.Do(ctx, s.osc)
		if err != nil || res.IsError() {
			t.Fatalf("delete document: %v %v", err, res)
		}
		res.Body.Close()
	}
	for _, target := range []string{"orders", "search"} {
		out, err := s.ctl("projector", "rebuild", target, "--in-place")
		if err != nil {
			t.Fatalf("rebuild %s --in-place: %v\n%s", target, err, out)
		}
		if out, err := s.ctl("verify", target); err != nil {
			t.Fatalf("verify %s after the in-place rebuild: %v\n%s", target, err, out)
		}
	}
	// The projectors start again from where the rebuild stopped and keep the models current.
	s.startProjectors()
	if _, err := s.shipOrder(500); err != nil {
		t.Fatal(err)
	}
	s.verifyEventually("orders")
	s.verifyEventually("search")
}
