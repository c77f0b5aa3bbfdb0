//go:build integration

package rebuild_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
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

	"github.com/orders-oss/orders/internal/auth"
	"github.com/orders-oss/orders/internal/command"
	"github.com/orders-oss/orders/internal/eventstore"
	"github.com/orders-oss/orders/internal/order"
	"github.com/orders-oss/orders/internal/pii"
	"github.com/orders-oss/orders/internal/projection"
	"github.com/orders-oss/orders/internal/readmodel"
	"github.com/orders-oss/orders/internal/rebuild"
	"github.com/orders-oss/orders/internal/relay"
	"github.com/orders-oss/orders/internal/searchindex"
	"github.com/orders-oss/orders/internal/testenv"
	"github.com/orders-oss/orders/pkg/events"
)

// liveStack is the whole write path (the command service, the relay) and both live projectors, in
// process, on the test's own database, topic and indices.
type liveStack struct {
	t        *testing.T
	pool     *pgxpool.Pool
	brokers  []string
	topic    string
	osc      *opensearch.Client
	alias    string
	index    string // the first index behind the alias
	commands *command.Service
	keys     *pii.Keyring
	groups   map[rebuild.Target]string // the live projectors' consumer groups
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
	keys := testenv.Keyring(t, pool)
	s := &liveStack{t: t, pool: pool, brokers: testenv.KafkaBrokers(t), topic: testenv.Topic(t, 3), osc: testenv.OpenSearch(t),
		commands: &command.Service{Store: eventstore.New(pool), Keys: keys, MaxRetries: 5}, keys: keys}
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
	producer, err := kgo.NewClient(kgo.SeedBrokers(s.brokers...), kgo.RequiredAcks(kgo.AllISRAcks()), kgo.ProducerLinger(time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	r := relay.New(relay.Config{Pool: pool, Client: producer, Topic: s.topic, Log: quietLog})
	done := make(chan struct{})
	go func() { defer close(done); _ = r.Run(ctx, relay.DefaultPolling) }()
	t.Cleanup(func() { cancel(); <-done; producer.Close() })
	name := testenv.Name(t)
	s.groups = map[rebuild.Target]string{rebuild.Orders: name + "-orders", rebuild.Search: name + "-search"}
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
		{Handler: readmodel.Handler{Pool: s.pool, OnGeneration: tpark.Use, Keys: s.keys}, Parking: tpark, Group: s.groups[rebuild.Orders]},
		{Handler: searchindex.Handler{Index: searchindex.New(s.osc, s.alias), Keys: s.keys}, Parking: spark, Group: s.groups[rebuild.Search], GapGrace: 10 * time.Second},
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

// shipOrder places, pays and ships an order (version 3) through the command service.
func (s *liveStack) shipOrder(i int) (string, error) {
	ctx := context.Background()
	placed, err := s.commands.Place(ctx, testActor, events.Metadata{Actor: "test"}, order.PlaceOrder{
		Customer:        order.Customer{ID: fmt.Sprintf("cus_%d", i%50), Name: fmt.Sprintf("Customer %d", i), Email: fmt.Sprintf("c%d@example.com", i)},
		ShippingAddress: events.Address{Name: "A", Line1: "1 St", City: "London", PostalCode: "N1", Country: "GB"},
		Currency:        "EUR",
		Items:           []events.LineItem{{SKU: fmt.Sprintf("BK-%d", i%7), Name: "Notes", Quantity: 2, UnitPrice: 1999}},
	}, nil)
	if err != nil {
		return "", fmt.Errorf("place: %w", err)
	}
	id := placed.Order.ID
	if _, err := s.commands.Execute(ctx, testActor, id, 0, events.Metadata{Actor: "test"}, auth.ChangeOrder, func(st order.State) ([]events.Payload, error) {
		return st.ConfirmPayment(3998, "EUR", "p")
	}, nil); err != nil {
		return "", fmt.Errorf("pay %s: %w", id, err)
	}
	_, err = s.commands.Execute(ctx, testActor, id, 0, events.Metadata{Actor: "test"}, auth.ShipOrder, func(st order.State) ([]events.Payload, error) {
		return st.Ship("DHL", fmt.Sprintf("JD%06d", i))
	}, nil)
	if err != nil {
		return "", fmt.Errorf("ship %s: %w", id, err)
	}
	return id, nil
}

// recorder is a rebuild.Progress that keeps what it was told.
type recorder struct {
	phases   []rebuild.Phase
	messages []string
}

func (r *recorder) Phase(p rebuild.Phase, _ int64) { r.phases = append(r.phases, p) }
func (r *recorder) Advance(int64)                  {}
func (r *recorder) Message(l rebuild.Level, text string) {
	r.messages = append(r.messages, string(l)+": "+text)
}

func (r *recorder) saw(p rebuild.Phase) bool {
	for _, q := range r.phases {
		if q == p {
			return true
		}
	}
	return false
}

func (r *recorder) String() string {
	return fmt.Sprintf("phases %v\n%s", r.phases, strings.Join(r.messages, "\n"))
}

func (s *liveStack) clients() rebuild.Clients {
	return rebuild.Clients{Brokers: s.brokers, Pool: s.pool, OpenSearch: s.osc, Keys: s.keys}
}

// rebuild rebuilds target with the CLI's defaults (catch-up lag 1,000).
func (s *liveStack) rebuild(target rebuild.Target, inPlace, backfill bool) (rebuild.Result, *recorder, error) {
	rec := &recorder{}
	res, err := rebuild.Rebuild(context.Background(), s.clients(), rebuild.Options{Target: target, Topic: s.topic, Alias: s.alias,
		LiveGroup: s.groups[target], InPlace: inPlace, Backfill: backfill, CatchUpLag: 1000}, rec)
	return res, rec, err
}

func (s *liveStack) verify(target rebuild.Target) (rebuild.Report, error) {
	return rebuild.VerifyTarget(context.Background(), s.clients(), target, s.alias, nil)
}

// verifyEventually verifies until the report shows no difference (the live projectors catch up with
// the last commands), failing after 60 s with the last report.
func (s *liveStack) verifyEventually(target rebuild.Target) {
	s.t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		r, err := s.verify(target)
		if err == nil && r.OK() {
			return
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("verify %s after 60 s: %v, %d differences: %+v", target, err, len(r.Differences), r.Differences[:min(5, len(r.Differences))])
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
	s.verifyEventually(rebuild.Orders)
	s.verifyEventually(rebuild.Search)

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
		mallory := "Mallory"
		d.Customer.Name = &mallory
		body, _ := json.Marshal(d)
		res, err := opensearchapi.IndexRequest{Index: s.index, DocumentID: id, Body: bytes.NewReader(body), Refresh: "true"}.Do(ctx, s.osc)
		if err != nil || res.IsError() {
			t.Fatalf("overwrite document: %v %v", err, res)
		}
		res.Body.Close()
	}
	for _, target := range rebuild.Targets {
		if r, err := s.verify(target); err != nil || len(r.Differences) != 10 || r.Missing != 5 || r.Fields != 5 {
			t.Fatalf("verify %s of the corrupted model = %v, %d differences (%d missing, %d fields), want 10 (5 missing, 5 fields)",
				target, err, len(r.Differences), r.Missing, r.Fields)
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
	for _, target := range rebuild.Targets {
		res, rec, err := s.rebuild(target, false, false)
		if err != nil {
			stopLoad()
			loadWG.Wait()
			t.Fatalf("rebuild %s: %v\n%s", target, err, rec)
		}
		if !rec.saw(rebuild.PhaseSwitched) || !strings.Contains(rec.String(), "caught up: reads switched to "+res.Generation) {
			t.Errorf("rebuild %s did not report the switch:\n%s", target, rec)
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

	s.verifyEventually(rebuild.Orders)
	s.verifyEventually(rebuild.Search)
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
	s.verifyEventually(rebuild.Orders)
	s.verifyEventually(rebuild.Search)
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
	for _, target := range rebuild.Targets {
		_, rec, err := s.rebuild(target, false, false)
		var lost *rebuild.HistoryLostError
		if !errors.As(err, &lost) || len(lost.Lost) == 0 || !strings.Contains(err.Error(), "refusing to rebuild") {
			t.Fatalf("rebuild %s of a topic that lost records = %v, want a *HistoryLostError naming the partitions\n%s", target, err, rec)
		}
	}
	if gens, err := readmodel.Generations(ctx, s.pool); err != nil || len(gens) != 1 {
		t.Fatalf("generations after a refused rebuild = %+v (%v), want the live one only", gens, err)
	}
	for _, target := range rebuild.Targets {
		res, rec, err := s.rebuild(target, false, true)
		if err != nil {
			t.Fatalf("rebuild %s with backfill: %v\n%s", target, err, rec)
		}
		if !rec.saw(rebuild.PhaseBackfill) || res.Backfilled != 120 || len(res.LostHistory) == 0 {
			t.Errorf("rebuild %s with backfill: backfilled %d events (want 120), lost history %+v\n%s", target, res.Backfilled, res.LostHistory, rec)
		}
		if r, err := s.verify(target); err != nil || !r.OK() {
			t.Fatalf("verify %s after the backfilled rebuild: %v, %+v", target, err, r.Differences)
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
	s.verifyEventually(rebuild.Orders)
	s.verifyEventually(rebuild.Search)
	// In place needs the group without members.
	if _, rec, err := s.rebuild(rebuild.Orders, true, false); err == nil || !strings.Contains(err.Error(), "running members") {
		t.Fatalf("in-place rebuild with the projector running = %v, want a refusal\n%s", err, rec)
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
	for _, g := range s.groups {
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
	for _, target := range rebuild.Targets {
		res, rec, err := s.rebuild(target, true, false)
		if err != nil {
			t.Fatalf("rebuild %s in place: %v\n%s", target, err, rec)
		}
		if !res.InPlace || res.Group != s.groups[target] || res.Events < 120 {
			t.Errorf("rebuild %s in place = %+v, want the live group %s and at least 120 events replayed", target, res, s.groups[target])
		}
		if r, err := s.verify(target); err != nil || !r.OK() {
			t.Fatalf("verify %s after the in-place rebuild: %v, %+v", target, err, r.Differences)
		}
	}
	// The projectors start again from where the rebuild stopped and keep the models current.
	s.startProjectors()
	if _, err := s.shipOrder(500); err != nil {
		t.Fatal(err)
	}
	s.verifyEventually(rebuild.Orders)
	s.verifyEventually(rebuild.Search)
}

// testActor is the principal the test's commands run as.
var testActor = auth.Principal{Subject: "test", Role: auth.Staff}
