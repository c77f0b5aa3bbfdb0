package rebuild

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/opensearch-project/opensearch-go/v2"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/orders-oss/orders/internal/projection"
	"github.com/orders-oss/orders/internal/projection/projectiontest"
	"github.com/orders-oss/orders/pkg/events"
)

// fakeGeneration is a generation in memory: its handler keeps each order's version, and its swap
// refuses a given number of times (the new tables not yet as far as the live ones) before it switches.
type fakeGeneration struct {
	mu        sync.Mutex
	versions  map[string]int64
	batches   []projection.Event
	failApply error
	refuse    int // swap answers "not yet" this many times
	swapCalls int
	swapped   bool
	afterWait int // afterSwap answers "not yet" this many times
	park      *projection.ParkedSet
}

func newFakeGeneration(t *testing.T) *fakeGeneration {
	park, err := projection.NewParkedSet(context.Background(), &projectiontest.MemStore{})
	if err != nil {
		t.Fatal(err)
	}
	return &fakeGeneration{versions: map[string]int64{}, park: park}
}

func (g *fakeGeneration) Apply(_ context.Context, batch []projection.Event, _ []projection.Position) (projection.Result, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.failApply != nil {
		return projection.Result{}, g.failApply
	}
	var res projection.Result
	for _, e := range batch {
		g.batches = append(g.batches, e)
		if projection.Classify(g.versions[e.Envelope.OrderID], e.Envelope.Version) == projection.StepApply {
			g.versions[e.Envelope.OrderID] = e.Envelope.Version
			res.Applied++
		} else {
			res.Duplicates++
		}
	}
	return res, nil
}

func (g *fakeGeneration) name() string                { return "fake-g2" }
func (g *fakeGeneration) previous() string            { return "fake-g1" }
func (g *fakeGeneration) handler() projection.Handler { return g }
func (g *fakeGeneration) parking() projection.Parking { return g.park }
func (g *fakeGeneration) swap(context.Context) (bool, error) {
	g.swapCalls++
	if g.swapCalls <= g.refuse {
		return false, nil
	}
	g.swapped = true
	return true, nil
}
func (g *fakeGeneration) afterSwap(context.Context, *kadm.Client, string) (bool, error) {
	g.afterWait--
	return g.afterWait < 0, nil
}
func (g *fakeGeneration) retire(context.Context) error  { return nil }
func (g *fakeGeneration) abandon(context.Context) error { return nil }

// record is a Progress that keeps everything.
type record struct {
	phases   []Phase
	totals   []int64
	last     int64
	messages []string
}

func (r *record) Phase(p Phase, total int64) {
	r.phases, r.totals = append(r.phases, p), append(r.totals, total)
}
func (r *record) Advance(n int64)              { r.last = n }
func (r *record) Message(l Level, text string) { r.messages = append(r.messages, string(l)+": "+text) }
func (r *record) String() string {
	return fmt.Sprintf("%v %v last %d %v", r.phases, r.totals, r.last, r.messages)
}

const topic = "orders.events"

// cluster is a kfake cluster holding orders × versions events (placed, then paid), and an admin client.
func cluster(t *testing.T, orders int) ([]string, *kadm.Client) {
	t.Helper()
	var recs []*kgo.Record
	for range orders {
		id := uuid.NewString()
		recs = append(recs, projectiontest.Record(t, topic, id, 1, projectiontest.Placed("c")), projectiontest.Record(t, topic, id, 2, events.PaymentConfirmed{}))
	}
	brokers := projectiontest.Cluster(t, topic, 3, recs...)
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return brokers, kadm.NewClient(cl)
}

func newRunner(brokers []string, adm *kadm.Client, gen generation, p Progress) *runner {
	return &runner{adm: adm, brokers: brokers, topic: topic, group: "rebuild-" + uuid.NewString(), gen: gen, p: p,
		poll: 200 * time.Millisecond, check: 10 * time.Millisecond}
}

func TestRunSwitchesReadsOnceCaughtUp(t *testing.T) {
	brokers, adm := cluster(t, 15)
	gen := newFakeGeneration(t)
	gen.refuse, gen.afterWait = 2, 3 // the tables are behind twice; the search rebuild goes on a bit after the swap
	rec := &record{}
	r := newRunner(brokers, adm, gen, rec)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var res Result
	if err := r.run(ctx, &res); err != nil {
		t.Fatalf("run = %v\n%s", err, rec)
	}
	if !gen.swapped || gen.swapCalls != 3 || gen.afterWait != -1 {
		t.Errorf("swap called %d times (swapped %v), afterSwap left %d; want 3 calls, then afterSwap until done", gen.swapCalls, gen.swapped, gen.afterWait)
	}
	if res.Events != 30 || len(gen.versions) != 15 {
		t.Errorf("replayed %d events into %d orders, want 30 into 15", res.Events, len(gen.versions))
	}
	if !reflect.DeepEqual(rec.phases, []Phase{PhaseReplay, PhaseSwitched}) || rec.totals[0] != 30 || rec.last != 30 {
		t.Errorf("progress = %s; want replay of 30 events, then switched", rec)
	}
	if len(rec.messages) != 1 || rec.messages[0] != "info: caught up: reads switched to fake-g2" {
		t.Errorf("messages = %q", rec.messages)
	}
}

func TestRunInPlaceStopsAtTheTopicsEnd(t *testing.T) {
	brokers, adm := cluster(t, 10)
	gen := newFakeGeneration(t)
	r := newRunner(brokers, adm, gen, nil)
	r.p, r.inPlace = Discard, true
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var res Result
	if err := r.run(ctx, &res); err != nil {
		t.Fatal(err)
	}
	if gen.swapCalls != 0 || res.Events != 20 {
		t.Errorf("in place: %d swaps, %d events; want no swap and 20 events", gen.swapCalls, res.Events)
	}
}

func TestRunStopsOnFailureAndInterrupt(t *testing.T) {
	brokers, adm := cluster(t, 5)
	gen := newFakeGeneration(t)
	gen.failApply = errors.New("disk full")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var res Result
	if err := newRunner(brokers, adm, gen, Discard).run(ctx, &res); err == nil || !strings.Contains(err.Error(), "replay: disk full") {
		t.Errorf("run with a failing handler = %v, want the replay error", err)
	}

	gen = newFakeGeneration(t)
	gen.refuse = 1 << 30 // never caught up
	ictx, interrupt := context.WithCancel(ctx)
	time.AfterFunc(500*time.Millisecond, interrupt)
	err := newRunner(brokers, adm, gen, Discard).run(ictx, &res)
	if !errors.Is(err, context.Canceled) || !strings.Contains(err.Error(), "interrupted") {
		t.Errorf("run interrupted = %v, want interrupted: context canceled", err)
	}
}

func TestBackfillFoldsTheStoreInPositionOrder(t *testing.T) {
	store := &memSource{}
	for i := range 12 {
		store.add(t, fmt.Sprintf("00000000-0000-4000-8000-00000000000%d", i%3), projectiontest.Placed("c"))
	}
	gen := newFakeGeneration(t)
	rec := &record{}
	n, err := backfill(context.Background(), store, gen, rec)
	if err != nil || n != 12 {
		t.Fatalf("backfill = %d, %v; want 12 events", n, err)
	}
	for i, e := range gen.batches {
		if e.Offset != int64(i+1) || e.Topic != "event-store" || e.Payload == nil {
			t.Fatalf("event %d handed over as %+v, want position %d from the event store, decoded", i, e, i+1)
		}
	}
	if !reflect.DeepEqual(rec.phases, []Phase{PhaseBackfill}) || rec.totals[0] != 12 || rec.last != 12 {
		t.Errorf("progress = %s", rec)
	}
}

// memSource is an event store in memory.
type memSource struct{ evs []events.Envelope }

func (m *memSource) add(t *testing.T, id string, p events.Payload) {
	typ, sv, data, err := events.EncodeAt(p, 1) // personal data in plain text, as an older release wrote it
	if err != nil {
		t.Fatal(err)
	}
	var v int64 = 1
	for _, e := range m.evs {
		if e.OrderID == id {
			v = e.Version + 1
		}
	}
	m.evs = append(m.evs, events.Envelope{Position: int64(len(m.evs) + 1), OrderID: id, Version: v, Type: typ, SchemaVersion: sv, Data: data})
}

func (m *memSource) LastPosition(context.Context) (int64, error) { return int64(len(m.evs)), nil }

func (m *memSource) ReadAll(_ context.Context, after int64, limit int) ([]events.Envelope, error) {
	return m.evs[min(after, int64(len(m.evs))):min(after+int64(limit), int64(len(m.evs)))], nil
}

func TestRebuildRefusesATopicThatLostHistory(t *testing.T) {
	brokers, adm := cluster(t, 20)
	ctx := context.Background()
	ends, err := adm.ListEndOffsets(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	var del kadm.Offsets
	ends.Each(func(o kadm.ListedOffset) { del.AddOffset(topic, o.Partition, o.Offset/2, -1) })
	if _, err := adm.DeleteRecords(ctx, del); err != nil {
		t.Fatal(err)
	}
	osc, err := opensearch.NewClient(opensearch.Config{Addresses: []string{"http://127.0.0.1:1"}}) // never reached
	if err != nil {
		t.Fatal(err)
	}
	rec := &record{}
	_, err = Rebuild(ctx, Clients{Brokers: brokers, OpenSearch: osc}, Options{Target: Search, Topic: topic, Alias: "orders", LiveGroup: "projector-search"}, rec)
	var lost *HistoryLostError
	if !errors.As(err, &lost) || len(lost.Lost) == 0 || lost.Topic != topic {
		t.Fatalf("Rebuild of a topic that lost records = %v, want a *HistoryLostError", err)
	}
	for _, p := range lost.Lost {
		if p.Start <= 0 || p.Start != ends[topic][p.Partition].Offset/2 {
			t.Errorf("lost %+v, want it to start at half its end %d", p, ends[topic][p.Partition].Offset)
		}
	}
	if !reflect.DeepEqual(rec.phases, []Phase{PhaseCheck}) {
		t.Errorf("phases = %v, want only the check (nothing built)", rec.phases)
	}
}

func TestOptionsCheck(t *testing.T) {
	err := Options{Target: "books", CatchUpLag: -1}.check(Clients{})
	for _, want := range []string{`unknown read model "books"`, "no Kafka brokers", "topic and the live group", "negative"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("check = %v, want it to say %q", err, want)
		}
	}
	err = Options{Target: Orders, Topic: "t", LiveGroup: "g"}.check(Clients{Brokers: []string{"b"}})
	if err == nil || !strings.Contains(err.Error(), "no Postgres pool") {
		t.Errorf("orders without a pool: %v", err)
	}
	err = Options{Target: Search, Topic: "t", LiveGroup: "g", Backfill: true}.check(Clients{Brokers: []string{"b"}})
	if err == nil || !strings.Contains(err.Error(), "no Postgres pool") || !strings.Contains(err.Error(), "no OpenSearch") {
		t.Errorf("search with backfill and no clients: %v", err)
	}
}

func TestRunningRebuildIsFound(t *testing.T) {
	brokers, adm := cluster(t, 2)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if g, err := runningRebuild(ctx, adm, "projector-search"); err != nil || g != "" {
		t.Fatalf("runningRebuild with no rebuild = %q, %v; want none", g, err)
	}
	// A rebuild's consumer is a member of projector-search-rebuild-<gen> while it runs.
	member, err := kgo.NewClient(projection.ConsumerOptions(brokers, topic, "projector-search-rebuild-orders-v2")...)
	if err != nil {
		t.Fatal(err)
	}
	defer member.Close()
	for deadline := time.Now().Add(10 * time.Second); ; {
		pctx, pcancel := context.WithTimeout(ctx, time.Second)
		member.PollRecords(pctx, 1) // joins the group
		pcancel()
		member.AllowRebalance() // the options block rebalances between a poll and its commit
		g, err := runningRebuild(ctx, adm, "projector-search")
		if err != nil {
			t.Fatal(err)
		}
		if g == "projector-search-rebuild-orders-v2" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("runningRebuild = %q while a rebuild's consumer is in its group, want that group", g)
		}
	}
	if g, _ := runningRebuild(ctx, adm, "projector-orders"); g != "" {
		t.Errorf("runningRebuild for the other read model = %q, want none", g)
	}
}
