package projection

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
)

// memParking is an in-memory Parking for unit tests.
type memParking struct {
	mu      sync.Mutex
	records map[string][]ParkedEvent
}

func (p *memParking) IsParked(o string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.records[o]) > 0
}
func (p *memParking) Count() int { p.mu.Lock(); defer p.mu.Unlock(); return len(p.records) }
func (p *memParking) Orders() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Sorted(maps.Keys(p.records))
}
func (p *memParking) Park(_ context.Context, o string, r *kgo.Record, why error) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	msg := WaitMessage
	if why != nil {
		msg = why.Error()
	}
	for _, e := range p.records[o] {
		if e.Partition == r.Partition && e.Offset == r.Offset {
			return nil
		}
	}
	p.records[o] = append(p.records[o], ParkedEvent{OrderID: o, Topic: r.Topic, Partition: r.Partition, Offset: r.Offset, Error: msg, Value: string(r.Value)})
	return nil
}
func (p *memParking) Parked(_ context.Context, o string) ([]ParkedEvent, []string, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.records[o], make([]string, len(p.records[o])), nil
}
func (p *memParking) Unpark(_ context.Context, o string, _ []string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.records, o)
	return nil
}

// countingHandler applies by version in memory; it can be told to fail the next call.
type countingHandler struct {
	mu       sync.Mutex
	applied  map[string]int64
	calls    int
	failNext error
}

func (h *countingHandler) Apply(_ context.Context, batch []Event, _ []Position) (Result, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.calls++
	if err := h.failNext; err != nil {
		h.failNext = nil
		return Result{}, err
	}
	// As the contract says: an order that fails has none of this batch's events applied.
	res := Result{Failed: map[string]error{}}
	next := map[string]int64{}
	for _, e := range batch {
		id := e.Envelope.OrderID
		if _, ok := next[id]; !ok {
			next[id] = h.applied[id]
		}
		switch Classify(next[id], e.Envelope.Version) {
		case StepApply:
			next[id] = e.Envelope.Version
		case StepGap:
			res.Failed[id] = &GapError{OrderID: id, Applied: next[id], Version: e.Envelope.Version}
		}
	}
	for _, e := range batch {
		id := e.Envelope.OrderID
		switch {
		case res.Failed[id] != nil:
		case e.Envelope.Version <= h.applied[id]:
			res.Duplicates++
		default:
			h.applied[id] = e.Envelope.Version
			res.Applied++
		}
	}
	return res, nil
}

func envelopeRecord(t *testing.T, topic, order string, version int64) *kgo.Record {
	t.Helper()
	return envelopeRecordAt(t, topic, order, version, time.Now())
}

func TestLoopCommitsOnlyAfterTheHandlerSucceeded(t *testing.T) {
	const topic = "orders.events"
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(3, topic))
	if err != nil {
		t.Fatal(err)
	}
	defer cluster.Close()
	brokers := cluster.ListenAddrs()
	producer, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		t.Fatal(err)
	}
	defer producer.Close()
	a, b := uuid.NewString(), uuid.NewString()
	recs := []*kgo.Record{envelopeRecord(t, topic, a, 1), envelopeRecord(t, topic, a, 2), envelopeRecord(t, topic, b, 1),
		{Topic: topic, Key: []byte("c"), Value: []byte("not json")}, envelopeRecord(t, topic, "c", 2), envelopeRecord(t, topic, b, 3)}
	ctx := context.Background()
	if err := producer.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}

	h := &countingHandler{applied: map[string]int64{}}
	parking := &memParking{records: map[string][]ParkedEvent{}}
	newLoop := func() (*Loop, *kgo.Client) {
		cl, err := kgo.NewClient(ConsumerOptions(brokers, topic, "g")...)
		if err != nil {
			t.Fatal(err)
		}
		return &Loop{Client: cl, Handler: h, Parking: parking, Topic: topic, Group: "g",
			Log: slog.New(slog.NewTextHandler(io.Discard, nil)), Metrics: NewMetrics()}, cl
	}
	// The first batch's write fails: RunOnce reports it and commits nothing, and the same member
	// reads the batch again (it does not go past it).
	l, cl := newLoop()
	defer cl.Close()
	h.failNext = errors.New("read model down")
	var runErr error
	for deadline := time.Now().Add(10 * time.Second); runErr == nil && time.Now().Before(deadline); {
		cctx, cancel := context.WithTimeout(ctx, time.Second)
		runErr = l.RunOnce(cctx)
		cancel()
	}
	if runErr == nil {
		t.Fatal("RunOnce never reported the handler's failure")
	}
	for deadline := time.Now().Add(10 * time.Second); ; {
		cctx, cancel := context.WithTimeout(ctx, time.Second)
		if err := l.RunOnce(cctx); err != nil {
			t.Fatalf("RunOnce: %v", err)
		}
		cancel()
		h.mu.Lock()
		done := h.applied[a] == 2
		h.mu.Unlock()
		if done && parking.IsParked("c") && parking.IsParked(b) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after 10 s: applied %v, parked %v; the failed batch was not read again", h.applied, parking.records)
		}
	}
	if n := len(parking.records["c"]); n != 2 {
		t.Errorf("order c has %d parked records, want 2 (the undecodable one and the one behind it)", n)
	}
	// b's version 3 follows version 1 in the same batch: the gap fails the order, so both of its
	// records are parked (none was applied) and its version 1 is not in the model.
	if got := parking.records[b]; len(got) != 2 || got[1].Error == WaitMessage {
		t.Errorf("order b parked %+v, want both of its records parked for the gap", got)
	}
	if h.applied[b] != 0 {
		t.Errorf("order b applied up to %d, want nothing (it failed)", h.applied[b])
	}
	// The commit landed: a third member has nothing left to read.
	cl.Close()
	l, cl = newLoop()
	defer cl.Close()
	calls := h.calls
	cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if err := l.RunOnce(cctx); err != nil {
		t.Fatal(err)
	}
	if h.calls != calls {
		t.Errorf("a member after the commit got a batch again; the offsets were not committed")
	}
}

func TestEnds(t *testing.T) {
	recs := []*kgo.Record{{Topic: "t", Partition: 1, Offset: 5}, {Topic: "t", Partition: 0, Offset: 9}, {Topic: "t", Partition: 1, Offset: 7}}
	got := Ends(recs)
	want := []Position{{Topic: "t", Partition: 1, Next: 8}, {Topic: "t", Partition: 0, Next: 10}}
	if len(got) != 2 || got[0] != want[0] || got[1] != want[1] {
		t.Errorf("Ends = %+v, want %+v", got, want)
	}
}

func TestDecodeRefusesAKeyThatIsNotTheOrder(t *testing.T) {
	r := envelopeRecord(t, "t", uuid.NewString(), 1)
	if _, err := Decode(r); err != nil {
		t.Fatalf("Decode of a good record: %v", err)
	}
	r.Key = []byte("someone-else")
	if _, err := Decode(r); err == nil {
		t.Error("Decode accepted a record keyed by another order")
	}
}

func TestGapGraceHoldsThenParks(t *testing.T) {
	l := &Loop{GapGrace: 50 * time.Millisecond}
	gap := Result{Failed: map[string]error{"x": &GapError{OrderID: "x", Applied: 1, Version: 3}, "y": errors.New("refused")}}
	if err := l.holdGaps(gap); !errors.Is(err, ErrGapWait) {
		t.Fatalf("first sight of a gap = %v, want ErrGapWait (the batch is read again)", err)
	}
	time.Sleep(60 * time.Millisecond)
	if err := l.holdGaps(gap); err != nil {
		t.Fatalf("a gap older than the grace = %v, want nil (the order is parked)", err)
	}
	if len(l.gapSince) != 0 {
		t.Errorf("gap clock kept %v after parking", l.gapSince)
	}
	if err := (&Loop{}).holdGaps(gap); err != nil {
		t.Errorf("without a grace = %v, want nil (park at once)", err)
	}
	if err := l.holdGaps(Result{Failed: map[string]error{"y": errors.New("refused")}}); err != nil {
		t.Errorf("a failure that is not a gap = %v, want nil (park at once)", err)
	}
}

func TestSeenCountsAppliedDuplicatesAndParked(t *testing.T) {
	m := NewMetrics()
	m.Applied.Add(2)
	m.Duplicates.Inc()
	m.Parked.Add(3)
	if got := m.Seen(); got != 6 {
		t.Errorf("Seen = %v, want 6", got)
	}
}
