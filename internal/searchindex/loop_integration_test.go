//go:build integration

package searchindex_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"reflect"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/opensearch-project/opensearch-go/v2"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/orders-oss/orders/internal/order"
	"github.com/orders-oss/orders/internal/projection"
	"github.com/orders-oss/orders/internal/projection/projectiontest"
	"github.com/orders-oss/orders/internal/searchindex"
	"github.com/orders-oss/orders/internal/testenv"
	"github.com/orders-oss/orders/pkg/events"
)

type loopEnv struct {
	t       *testing.T
	topic   string
	group   string
	brokers []string
	ix      *searchindex.Index
	parking *projection.ParkedSet
	search  *opensearch.Client
	parked  string // the parking index
	metrics *projection.Metrics
}

func newLoopEnv(t *testing.T) *loopEnv {
	t.Helper()
	ctx := context.Background()
	search := testenv.OpenSearch(t)
	prefix := testenv.IndexPrefix(t)
	ix := searchindex.New(search, prefix+"-orders")
	if err := ix.Ensure(ctx, prefix+"-orders-v1"); err != nil {
		t.Fatal(err)
	}
	parking, err := searchindex.NewParking(ctx, search, prefix+"-orders-parked")
	if err != nil {
		t.Fatal(err)
	}
	return &loopEnv{t: t, topic: testenv.Topic(t, 3), group: testenv.Name(t), brokers: testenv.KafkaBrokers(t), ix: ix,
		parking: parking, search: search, parked: prefix + "-orders-parked", metrics: projection.NewMetrics()}
}

// loop returns a loop with a client of its own, closed when the test ends.
func (e *loopEnv) loop() (*projection.Loop, *kgo.Client) {
	e.t.Helper()
	cl, err := kgo.NewClient(projection.ConsumerOptions(e.brokers, e.topic, e.group)...)
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(cl.Close)
	return &projection.Loop{Client: cl, Handler: searchindex.Handler{Index: e.ix, Keys: projectiontest.Keys}, Parking: e.parking, Topic: e.topic, Group: e.group,
		Log: slog.New(slog.NewTextHandler(io.Discard, nil)), Metrics: e.metrics}, cl
}

func (e *loopEnv) produce(recs ...*kgo.Record) {
	e.t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(e.brokers...), kgo.DefaultProduceTopic(e.topic))
	if err != nil {
		e.t.Fatal(err)
	}
	defer cl.Close()
	if err := cl.ProduceSync(context.Background(), recs...).FirstErr(); err != nil {
		e.t.Fatal(err)
	}
}

func TestLoopProjectsParksAndIgnoresRedelivery(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newLoopEnv(t)
	a, b, c := uuid.NewString(), uuid.NewString(), uuid.NewString()
	placed := events.OrderPlaced{Customer: events.Customer{ID: "c", Name: events.Plain("Ada Lovelace"), Email: events.Plain("ada@example.com")},
		ShippingAddress: events.Plain(events.Address{Name: "Ada", Line1: "1", City: "London", PostalCode: "N1", Country: "GB"}), Currency: "EUR",
		Items: []events.LineItem{{SKU: "BK-1", Name: "Notes", Quantity: 2, UnitPrice: 1999}}}
	_, aEnvs := history(t, a, placed, events.PaymentConfirmed{Amount: 3998, Currency: "EUR", Reference: "p"},
		events.OrderShipped{Carrier: "DHL", Parcels: []events.Parcel{{TrackingNumber: "T1"}}}, events.OrderDelivered{})
	_, bEnvs := history(t, b, placed)
	_, cEnvs := history(t, c, placed, events.OrderCancelled{Reason: events.Plain("r")})
	var recs []*kgo.Record
	for _, env := range aEnvs {
		recs = append(recs, projectiontest.EnvelopeRecord(t, env))
	}
	recs = append(recs, projectiontest.EnvelopeRecord(t, bEnvs[0]))
	// c: its first event is corrupt (poison); its second must wait behind it.
	recs = append(recs, &kgo.Record{Key: []byte(c), Value: []byte(`{"order_id":"` + c + `","type":"OrderPlaced","data":{`)}, projectiontest.EnvelopeRecord(t, cEnvs[1]))
	e.produce(recs...)

	l, cl := e.loop()
	projectiontest.RunUntil(t, l, func() bool {
		docs, err := e.ix.Get(ctx, []string{a, b})
		return err == nil && docs[a].Version == 4 && docs[b].Version == 1 && e.parking.IsParked(c)
	})
	docs, _ := e.ix.Get(ctx, []string{a, b, c})
	want := projectiontest.Fold(t, aEnvs)
	if got := order.FromView(docs[a]); !reflect.DeepEqual(got, want) {
		t.Errorf("document of a = %+v, want the fold %+v", got, want)
	}
	if _, ok := docs[c]; ok {
		t.Errorf("the poisoned order c has a document; want none (its events are parked)")
	}
	if n := e.parkedCount(); n != 2 {
		t.Errorf("%d parked events, want 2: the corrupt one and the one waiting behind it", n)
	}

	// Redelivery: rewind the group to the start; nothing changes, duplicates are counted.
	cl.Close()
	adm := testenv.Admin(t)
	starts, err := adm.ListStartOffsets(ctx, e.topic)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := adm.CommitOffsets(ctx, e.group, starts.Offsets()); err != nil {
		t.Fatal(err)
	}
	// The lag gauge sees the rewound group 7 records behind.
	lctx, lcancel := context.WithTimeout(ctx, 3*time.Second)
	projection.WatchLag(lctx, adm, e.topic, e.group, e.metrics, time.Hour) // one refresh, then waits for lctx
	lcancel()
	if lag := gaugeSum(t, e.metrics, "projector_lag_records"); lag != 7 {
		t.Errorf("lag after rewinding = %v, want 7 (every record)", lag)
	}
	before := docs
	dupBefore := counter(t, e.metrics, "projector_duplicates_skipped_total")
	l2, _ := e.loop()
	projectiontest.RunUntil(t, l2, func() bool { return counter(t, e.metrics, "projector_duplicates_skipped_total") >= dupBefore+5 })
	after, _ := e.ix.Get(ctx, []string{a, b, c})
	if !reflect.DeepEqual(after, before) {
		t.Errorf("documents changed after a redelivery:\nbefore %+v\nafter  %+v", before, after)
	}
}

// parkedCount is the number of parked events (each park refreshes the index).
func (e *loopEnv) parkedCount() int {
	e.t.Helper()
	res, err := e.search.Count(e.search.Count.WithIndex(e.parked))
	if err != nil {
		e.t.Fatal(err)
	}
	defer res.Body.Close()
	var c struct {
		Count int `json:"count"`
	}
	_ = json.NewDecoder(res.Body).Decode(&c)
	return c.Count
}

func counter(t *testing.T, m *projection.Metrics, name string) float64 {
	t.Helper()
	fams, err := m.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fams {
		if f.GetName() == name {
			return f.Metric[0].GetCounter().GetValue()
		}
	}
	t.Fatalf("no metric %s", name)
	return 0
}

func gaugeSum(t *testing.T, m *projection.Metrics, name string) float64 {
	t.Helper()
	fams, err := m.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var sum float64
	for _, f := range fams {
		if f.GetName() == name {
			for _, mm := range f.Metric {
				sum += mm.GetGauge().GetValue()
			}
		}
	}
	return sum
}

func TestOffsetBelowLogStartStops(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newLoopEnv(t)
	var recs []*kgo.Record
	for i := range 6 {
		recs = append(recs, &kgo.Record{Key: []byte("k"), Value: []byte{byte(i)}, Partition: 0})
	}
	e.produce(recs...)
	adm := testenv.Admin(t)
	ends, err := adm.ListEndOffsets(ctx, e.topic)
	if err != nil {
		t.Fatal(err)
	}
	var p int32 = -1
	ends.Each(func(o kadm.ListedOffset) {
		if o.Offset == 6 {
			p = o.Partition
		}
	})
	if p < 0 {
		t.Fatal("the 6 records did not land in one partition")
	}
	var committed kadm.Offsets
	committed.AddOffset(e.topic, p, 1, -1)
	if _, err := adm.CommitOffsets(ctx, e.group, committed); err != nil {
		t.Fatal(err)
	}
	if err := projection.CheckOffsets(ctx, adm, e.topic, e.group); err != nil {
		t.Fatalf("CheckOffsets before any deletion = %v, want nil", err)
	}
	var del kadm.Offsets
	del.AddOffset(e.topic, p, 4, -1)
	if _, err := adm.DeleteRecords(ctx, del); err != nil {
		t.Fatal(err)
	}
	if err := projection.CheckOffsets(ctx, adm, e.topic, e.group); !errors.Is(err, projection.ErrOffsetBelowLogStart) {
		t.Fatalf("CheckOffsets after deleting records past the commit = %v, want ErrOffsetBelowLogStart", err)
	}
}

func TestReplayUnparksAfterTheMissingEventArrives(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newLoopEnv(t)
	x := uuid.NewString()
	placed := events.OrderPlaced{Customer: events.Customer{ID: "c", Name: events.Plain("Ada"), Email: events.Plain("ada@example.com")},
		ShippingAddress: events.Plain(events.Address{Name: "Ada", Line1: "1", City: "London", PostalCode: "N1", Country: "GB"}), Currency: "EUR",
		Items: []events.LineItem{{SKU: "BK-1", Name: "Notes", Quantity: 1, UnitPrice: 10}}}
	_, envs := history(t, x, placed, events.PaymentConfirmed{Amount: 10, Currency: "EUR", Reference: "p"}, events.OrderShipped{Carrier: "DHL", Parcels: []events.Parcel{{TrackingNumber: "T"}}})
	l, _ := e.loop()
	// Version 2 arrives without version 1 (lost from the topic): a gap parks the order.
	e.produce(projectiontest.EnvelopeRecord(t, envs[1]))
	projectiontest.RunUntil(t, l, func() bool { return e.parking.IsParked(x) })
	if _, err := l.Replay(ctx, x); err == nil {
		t.Fatal("Replay before the missing event is there succeeded; want the gap reported")
	}
	// The missing event is republished; it parks behind version 2. Replay now applies both, in order.
	e.produce(projectiontest.EnvelopeRecord(t, envs[0]))
	projectiontest.RunUntil(t, l, func() bool { return e.parkedCount() == 2 })
	n, err := l.Replay(ctx, x)
	if err != nil || n != 2 {
		t.Fatalf("Replay = %d, %v; want 2 replayed", n, err)
	}
	if e.parking.IsParked(x) || e.parkedCount() != 0 {
		t.Fatalf("the order is still parked after a successful replay")
	}
	// Later events flow again.
	e.produce(projectiontest.EnvelopeRecord(t, envs[2]))
	projectiontest.RunUntil(t, l, func() bool {
		docs, err := e.ix.Get(ctx, []string{x})
		return err == nil && docs[x].Version == 3 && docs[x].Status == "shipped"
	})
	if _, err := l.Replay(ctx, x); !errors.Is(err, projection.ErrNothingParked) {
		t.Errorf("Replay of an unparked order = %v, want ErrNothingParked", err)
	}
}
