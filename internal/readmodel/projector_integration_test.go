//go:build integration

package readmodel_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"reflect"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/orders-oss/orders/internal/order"
	"github.com/orders-oss/orders/internal/projection"
	"github.com/orders-oss/orders/internal/projection/projectiontest"
	"github.com/orders-oss/orders/internal/readmodel"
	"github.com/orders-oss/orders/internal/testenv"
	"github.com/orders-oss/orders/pkg/api"
	"github.com/orders-oss/orders/pkg/events"
)

var placed = events.OrderPlaced{Customer: events.Customer{ID: "c-1", Name: events.Plain("Ada Lovelace"), Email: events.Plain("ada@example.com")},
	ShippingAddress: events.Plain(events.Address{Name: "Ada", Line1: "1", City: "London", PostalCode: "N1", Country: "GB"}), Currency: "EUR",
	Items: []events.LineItem{{SKU: "BK-1", Name: "Notes", Quantity: 2, UnitPrice: 1999}}}

func history(t *testing.T, id string, payloads ...events.Payload) ([]projection.Event, []events.Envelope) {
	t.Helper()
	var evs []projection.Event
	var envs []events.Envelope
	for i, p := range payloads {
		// Sealed with the test keys, as the command service writes it; the handlers open it with them.
		p = projectiontest.Seal(t, id, p)
		typ, sv, data, err := events.Encode(p)
		if err != nil {
			t.Fatal(err)
		}
		e := events.Envelope{EventID: uuid.Must(uuid.NewV7()), OrderID: id, Version: int64(i + 1), Type: typ, SchemaVersion: sv, Data: data,
			OccurredAt: time.Date(2026, 11, 22, 10, i, 0, 0, time.UTC), RecordedAt: time.Now()}
		evs = append(evs, projection.Event{Envelope: e, Payload: p})
		envs = append(envs, e)
	}
	return evs, envs
}

func newModel(t *testing.T) (*pgxpool.Pool, int) {
	t.Helper()
	pool := testenv.Postgres(t)
	gen, err := readmodel.Ensure(context.Background(), pool)
	if err != nil {
		t.Fatal(err)
	}
	return pool, gen
}

type line struct {
	SKU       string
	Quantity  int64
	UnitPrice int64
}

func lines(t *testing.T, pool *pgxpool.Pool, id string) []line {
	t.Helper()
	rows, err := pool.Query(context.Background(), "SELECT sku, quantity, unit_price FROM orders_read.order_lines WHERE order_id = $1 ORDER BY line_no", id)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []line
	for rows.Next() {
		var l line
		if err := rows.Scan(&l.SKU, &l.Quantity, &l.UnitPrice); err != nil {
			t.Fatal(err)
		}
		out = append(out, l)
	}
	return out
}

func current(t *testing.T, pool *pgxpool.Pool, gen int, ids ...string) map[string]api.Order {
	t.Helper()
	docs, err := readmodel.Current(context.Background(), pool, gen, ids)
	if err != nil {
		t.Fatal(err)
	}
	return docs
}

func TestApplyFoldsIdempotentlyAndRefusesGaps(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool, gen := newModel(t)
	h := readmodel.Handler{Pool: pool, Generation: gen, Keys: projectiontest.Keys}
	a, b := uuid.NewString(), uuid.NewString()
	aEvents, aEnvs := history(t, a, placed, events.OrderItemAdded{Item: events.LineItem{SKU: "PEN-2", Name: "Pen", Quantity: 3, UnitPrice: 250}},
		events.PaymentConfirmed{Amount: 4748, Currency: "EUR", Reference: "pay-1"}, events.OrderShipped{Carrier: "DHL", Parcels: []events.Parcel{{TrackingNumber: "JD0001"}}})
	bEvents, _ := history(t, b, placed, events.PaymentConfirmed{Amount: 3998, Currency: "EUR", Reference: "pay-2"}, events.OrderCancelled{Reason: events.Plain("late")})

	ends := []projection.Position{{Topic: "t", Partition: 0, Next: 10}, {Topic: "t", Partition: 2, Next: 4}}
	res, err := h.Apply(ctx, []projection.Event{aEvents[0], bEvents[0], aEvents[1]}, ends)
	if err != nil || res.Applied != 3 || res.Duplicates != 0 || len(res.Failed) != 0 {
		t.Fatalf("first batch = %+v, %v; want 3 applied", res, err)
	}
	if got := lines(t, pool, a); !reflect.DeepEqual(got, []line{{"BK-1", 2, 1999}, {"PEN-2", 3, 250}}) {
		t.Errorf("lines of a = %v", got)
	}
	// A redelivery of the first two events with the next two: only the new ones count.
	res, err = h.Apply(ctx, []projection.Event{aEvents[0], aEvents[1], bEvents[0], aEvents[2], aEvents[3]}, nil)
	if err != nil || res.Applied != 2 || res.Duplicates != 3 {
		t.Fatalf("second batch = %+v, %v; want 2 applied, 3 duplicates", res, err)
	}
	// A batch made only of old events writes nothing at all.
	var projectedBefore time.Time
	if err := pool.QueryRow(ctx, "SELECT projected_at FROM orders_read.orders WHERE id = $1", a).Scan(&projectedBefore); err != nil {
		t.Fatal(err)
	}
	res, err = h.Apply(ctx, []projection.Event{aEvents[2], aEvents[3]}, nil)
	if err != nil || res.Applied != 0 || res.Duplicates != 2 {
		t.Fatalf("stale batch = %+v, %v; want 2 duplicates", res, err)
	}
	var projectedAfter time.Time
	if err := pool.QueryRow(ctx, "SELECT projected_at FROM orders_read.orders WHERE id = $1", a).Scan(&projectedAfter); err != nil {
		t.Fatal(err)
	}
	if !projectedAfter.Equal(projectedBefore) {
		t.Errorf("the row of a was rewritten by a batch of duplicates")
	}
	// b's version 3 without version 2: a gap, never applied.
	res, err = h.Apply(ctx, []projection.Event{bEvents[2]}, nil)
	var gap *projection.GapError
	if err != nil || !errors.As(res.Failed[b], &gap) || res.Applied != 0 {
		t.Fatalf("gap batch = %+v, %v; want b failed with a GapError", res, err)
	}
	docs := current(t, pool, gen, a, b)
	wantA := projectiontest.Fold(t, aEnvs)
	if got := order.FromView(docs[a]); !reflect.DeepEqual(got, wantA) {
		t.Errorf("row of a = %+v, want the fold %+v", got, wantA)
	}
	if docs[b].Version != 1 || docs[b].Status != "placed" {
		t.Errorf("b = version %d %s, want version 1 placed (the gap not applied)", docs[b].Version, docs[b].Status)
	}
	var status, carrier, tracking string
	var total int64
	if err := pool.QueryRow(ctx, "SELECT status, carrier, tracking_number, total FROM orders_read.orders WHERE id = $1", a).Scan(&status, &carrier, &tracking, &total); err != nil {
		t.Fatal(err)
	}
	if status != "shipped" || carrier != "DHL" || tracking != "JD0001" || total != 4748 {
		t.Errorf("columns of a = %s %s %s %d, want shipped DHL JD0001 4748", status, carrier, tracking, total)
	}
	pos, err := readmodel.Positions(ctx, pool, gen)
	if err != nil {
		t.Fatal(err)
	}
	if want := []readmodel.Position{{Topic: "t", Partition: 0, NextOffset: 10}, {Topic: "t", Partition: 2, NextOffset: 4}}; !reflect.DeepEqual(pos, want) {
		t.Errorf("positions = %+v, want %+v", pos, want)
	}
}

func TestApplyParksOnlyTheOrderPostgresRefuses(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool, gen := newModel(t)
	h := readmodel.Handler{Pool: pool, Generation: gen, Keys: projectiontest.Keys}
	good, bad := uuid.NewString(), uuid.NewString()
	goodEvents, _ := history(t, good, placed)
	nul := placed
	nul.Customer.Name = events.Plain("Ada\x00Lovelace") // jsonb cannot store NUL: Postgres refuses the row
	badEvents, _ := history(t, bad, nul)
	res, err := h.Apply(ctx, []projection.Event{badEvents[0], goodEvents[0]}, []projection.Position{{Topic: "t", Partition: 1, Next: 2}})
	if err != nil {
		t.Fatalf("Apply = %v; want the refused order isolated, not the batch failed", err)
	}
	if res.Failed[bad] == nil || res.Failed[good] != nil || res.Applied != 1 {
		t.Fatalf("Apply = %+v; want only the NUL order failed and the other applied", res)
	}
	if docs := current(t, pool, gen, good, bad); docs[good].Version != 1 || len(docs) != 1 {
		t.Errorf("read model holds %v; want only the good order", docs)
	}
	if pos, err := readmodel.Positions(ctx, pool, gen); err != nil || len(pos) != 1 || pos[0].NextOffset != 2 {
		t.Errorf("positions = %+v, %v; want the batch's end recorded", pos, err)
	}
}

// --- the loop on a real topic

type loopEnv struct {
	t       *testing.T
	pool    *pgxpool.Pool
	gen     int
	topic   string
	group   string
	brokers []string
	parking *readmodel.Parking
	metrics *projection.Metrics
}

func newLoopEnv(t *testing.T) *loopEnv {
	t.Helper()
	pool, gen := newModel(t)
	parking, err := readmodel.NewParking(context.Background(), pool, gen)
	if err != nil {
		t.Fatal(err)
	}
	return &loopEnv{t: t, pool: pool, gen: gen, topic: testenv.Topic(t, 3), group: testenv.Name(t), brokers: testenv.KafkaBrokers(t),
		parking: parking, metrics: projection.NewMetrics()}
}

func (e *loopEnv) loop() (*projection.Loop, *kgo.Client) {
	e.t.Helper()
	cl, err := kgo.NewClient(projection.ConsumerOptions(e.brokers, e.topic, e.group)...)
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(cl.Close)
	return &projection.Loop{Client: cl, Handler: readmodel.Handler{Pool: e.pool, Generation: e.gen, Keys: projectiontest.Keys}, Parking: e.parking,
		Topic: e.topic, Group: e.group, Log: slog.New(slog.NewTextHandler(io.Discard, nil)), Metrics: e.metrics}, cl
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

func (e *loopEnv) parkedCount() int {
	e.t.Helper()
	var n int
	if err := e.pool.QueryRow(context.Background(), "SELECT count(*) FROM orders_read.parked_events").Scan(&n); err != nil {
		e.t.Fatal(err)
	}
	return n
}

func metric(t *testing.T, m *projection.Metrics, name string) float64 {
	t.Helper()
	fams, err := m.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fams {
		if f.GetName() == name {
			mm := f.Metric[0]
			if mm.Counter != nil {
				return mm.GetCounter().GetValue()
			}
			return mm.GetGauge().GetValue()
		}
	}
	t.Fatalf("no metric %s", name)
	return 0
}

// snapshot is every row of the read model, lines and projection times included.
func (e *loopEnv) snapshot() []string {
	e.t.Helper()
	rows, err := e.pool.Query(context.Background(), `SELECT o::text || coalesce((SELECT string_agg(l::text, ';' ORDER BY line_no)
		FROM orders_read.order_lines l WHERE l.order_id = o.id), '') FROM orders_read.orders o ORDER BY id`)
	if err != nil {
		e.t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			e.t.Fatal(err)
		}
		out = append(out, s)
	}
	return out
}

func TestLoopParksPoisonAndIgnoresRedelivery(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newLoopEnv(t)
	a, b, c := uuid.NewString(), uuid.NewString(), uuid.NewString()
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
		docs := current(t, e.pool, e.gen, a, b)
		return docs[a].Version == 4 && docs[b].Version == 1 && e.parking.IsParked(c)
	})
	docs := current(t, e.pool, e.gen, a, b, c)
	want := projectiontest.Fold(t, aEnvs)
	if got := order.FromView(docs[a]); !reflect.DeepEqual(got, want) {
		t.Errorf("row of a = %+v, want the fold %+v", got, want)
	}
	if _, ok := docs[c]; ok {
		t.Errorf("the poisoned order c has a row; want none (its events are parked)")
	}
	if n := e.parkedCount(); n != 2 {
		t.Errorf("%d parked events, want 2: the corrupt one and the one waiting behind it", n)
	}
	if g := metric(t, e.metrics, "projector_parked_orders"); g != 1 {
		t.Errorf("projector_parked_orders = %v, want 1", g)
	}

	// Redelivery: rewind the group to the start; nothing changes (not even a projection time).
	cl.Close()
	adm := testenv.Admin(t)
	starts, err := adm.ListStartOffsets(ctx, e.topic)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := adm.CommitOffsets(ctx, e.group, starts.Offsets()); err != nil {
		t.Fatal(err)
	}
	before := e.snapshot()
	dupBefore := metric(t, e.metrics, "projector_duplicates_skipped_total")
	appliedBefore := metric(t, e.metrics, "projector_events_applied_total")
	l2, _ := e.loop()
	projectiontest.RunUntil(t, l2, func() bool { return metric(t, e.metrics, "projector_duplicates_skipped_total") >= dupBefore+5 })
	if after := e.snapshot(); !reflect.DeepEqual(after, before) {
		t.Errorf("read model changed after a redelivery:\nbefore %v\nafter  %v", before, after)
	}
	if got := metric(t, e.metrics, "projector_events_applied_total"); got != appliedBefore {
		t.Errorf("applied counter moved from %v to %v on a redelivery", appliedBefore, got)
	}
	if n := e.parkedCount(); n != 2 {
		t.Errorf("%d parked events after the redelivery, want still 2", n)
	}
}

func TestReplayUnparksAfterTheMissingEventArrives(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newLoopEnv(t)
	x := uuid.NewString()
	_, envs := history(t, x, placed, events.PaymentConfirmed{Amount: 3998, Currency: "EUR", Reference: "p"}, events.OrderShipped{Carrier: "DHL", Parcels: []events.Parcel{{TrackingNumber: "T"}}})
	l, _ := e.loop()
	// Version 2 arrives without version 1 (lost from the topic): a gap parks the order.
	e.produce(projectiontest.EnvelopeRecord(t, envs[1]))
	projectiontest.RunUntil(t, l, func() bool { return e.parking.IsParked(x) })
	if _, err := l.Replay(ctx, x); err == nil {
		t.Fatal("Replay before the missing event is there succeeded; want the gap reported")
	}
	// The missing event is republished; it parks behind version 2. Replay applies both, in order.
	e.produce(projectiontest.EnvelopeRecord(t, envs[0]))
	projectiontest.RunUntil(t, l, func() bool { return e.parkedCount() == 2 })
	n, err := l.Replay(ctx, x)
	if err != nil || n != 2 {
		t.Fatalf("Replay = %d, %v; want 2 replayed", n, err)
	}
	if e.parking.IsParked(x) || e.parkedCount() != 0 {
		t.Fatalf("the order is still parked after a successful replay")
	}
	e.produce(projectiontest.EnvelopeRecord(t, envs[2]))
	projectiontest.RunUntil(t, l, func() bool {
		d := current(t, e.pool, e.gen, x)
		return d[x].Version == 3 && d[x].Status == "shipped"
	})
	if _, err := l.Replay(ctx, x); !errors.Is(err, projection.ErrNothingParked) {
		t.Errorf("Replay of an unparked order = %v, want ErrNothingParked", err)
	}
	// A parking opened afresh (a restart) still knows nothing is parked.
	p2, err := readmodel.NewParking(ctx, e.pool, e.gen)
	if err != nil || p2.Count() != 0 {
		t.Errorf("reloaded parking has %d orders (%v), want 0", p2.Count(), err)
	}
}

// An older projector parked an order whose event was of a schema version it did not know; after the
// upgrade, the projector's start replays it, with no operator.
func TestParkedForAnUnknownSchemaFlowsAfterTheUpgrade(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newLoopEnv(t)
	x := uuid.NewString()
	_, envs := history(t, x, placed, events.PaymentConfirmed{Amount: 3998, Currency: "EUR", Reference: "p"},
		events.OrderShipped{Carrier: "DHL", Parcels: []events.Parcel{{TrackingNumber: "JD-NEW"}}})
	l, _ := e.loop()
	e.produce(projectiontest.EnvelopeRecord(t, envs[0]), projectiontest.EnvelopeRecord(t, envs[1]))
	projectiontest.RunUntil(t, l, func() bool { return current(t, e.pool, e.gen, x)[x].Version == 2 })
	// The release before knew OrderShipped up to version 1: it parked version 3 (v2) of the order.
	shipped := projectiontest.EnvelopeRecord(t, envs[2])
	shipped.Topic, shipped.Offset = e.topic, 2
	old := &events.UnknownEventError{Type: events.TypeOrderShipped, SchemaVersion: 2, KnownVersion: 1}
	if err := e.parking.Park(ctx, x, shipped, old); err != nil {
		t.Fatal(err)
	}
	if e.parkedCount() != 1 {
		t.Fatalf("%d parked events, want 1", e.parkedCount())
	}
	// This release starts.
	restarted, err := readmodel.NewParking(ctx, e.pool, e.gen)
	if err != nil {
		t.Fatal(err)
	}
	l.Parking = restarted
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error)
	go func() { done <- l.Run(runCtx) }()
	defer func() { cancel(); <-done }()
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		d := current(t, e.pool, e.gen, x)[x]
		if d.Version == 3 && d.Shipment != nil && d.Shipment.TrackingNumber == "JD-NEW" && e.parkedCount() == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("30 s after the start: %+v, %d parked events; want the order shipped and nothing parked", d, e.parkedCount())
		}
	}
	if restarted.IsParked(x) {
		t.Error("the order is still in the parked set")
	}
}
