//go:build integration

package relay_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/orders-oss/orders/internal/eventstore"
	"github.com/orders-oss/orders/internal/relay"
	"github.com/orders-oss/orders/internal/testenv"
	"github.com/orders-oss/orders/pkg/events"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

type fixture struct {
	t       *testing.T
	pool    *pgxpool.Pool
	store   *eventstore.Store
	brokers []string
	topic   string
}

func newFixture(t *testing.T, brokers []string, topic string) *fixture {
	t.Helper()
	pool := testenv.Postgres(t)
	if err := eventstore.Migrate(context.Background(), pool); err != nil {
		t.Fatal(err)
	}
	return &fixture{t: t, pool: pool, store: eventstore.New(pool), brokers: brokers, topic: topic}
}

func sharedFixture(t *testing.T) *fixture {
	t.Helper()
	return newFixture(t, testenv.KafkaBrokers(t), testenv.Topic(t, 3))
}

func (f *fixture) relay() *relay.Relay {
	f.t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(f.brokers...), kgo.RequiredAcks(kgo.AllISRAcks()), kgo.ProducerLinger(time.Millisecond))
	if err != nil {
		f.t.Fatal(err)
	}
	f.t.Cleanup(cl.Close)
	// The relay runs as its service role: Postgres checks it may do all it does (and no more).
	r := relay.New(relay.Config{Pool: testenv.PostgresAs(f.t, f.pool, "orders_relay"), Client: cl, Topic: f.topic, BatchSize: 100, Log: quiet})
	f.t.Cleanup(r.Close)
	return r
}

func newEvent(i int) eventstore.NewEvent {
	return eventstore.NewEvent{Type: events.TypeOrderItemRemoved, SchemaVersion: 1, Data: json.RawMessage(fmt.Sprintf(`{"sku":"S-%d"}`, i)),
		Metadata: events.Metadata{CorrelationID: "corr", CausationID: "req", Actor: "test"}, OccurredAt: time.Now()}
}

// appendNext appends one event to an order and returns its id, retrying version conflicts.
func (f *fixture) appendNext(ctx context.Context, order string, i int) (uuid.UUID, error) {
	_, out, err := f.store.Update(ctx, order, 100, func([]events.Envelope) ([]eventstore.NewEvent, error) {
		return []eventstore.NewEvent{newEvent(i)}, nil
	})
	if err != nil {
		return uuid.Nil, err
	}
	return out[0].EventID, nil
}

func (f *fixture) outbox() int {
	f.t.Helper()
	var n int
	if err := f.pool.QueryRow(context.Background(), "SELECT count(*) FROM outbox").Scan(&n); err != nil {
		f.t.Fatal(err)
	}
	return n
}

func (f *fixture) allEventIDs() map[uuid.UUID]bool {
	f.t.Helper()
	rows, err := f.pool.Query(context.Background(), "SELECT event_id FROM events")
	if err != nil {
		f.t.Fatal(err)
	}
	defer rows.Close()
	out := map[uuid.UUID]bool{}
	for rows.Next() {
		var id uuid.UUID
		if err := rows.Scan(&id); err != nil {
			f.t.Fatal(err)
		}
		out[id] = true
	}
	return out
}

// topicContents reads the topic from the start until it holds want distinct event ids (or fails at
// the deadline), and returns every record in partition-offset order, with per-order sequences.
type published struct {
	count    map[uuid.UUID]int
	perOrder map[string][]int64 // versions in the order they appear in the order's partition
	total    int
}

func (f *fixture) read(want int) published {
	f.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cl, err := kgo.NewClient(kgo.SeedBrokers(f.brokers...), kgo.ConsumeTopics(f.topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		f.t.Fatal(err)
	}
	defer cl.Close()
	p := published{count: map[uuid.UUID]int{}, perOrder: map[string][]int64{}}
	for len(p.count) < want {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			f.t.Fatalf("the topic holds %d distinct events after 60 s, want %d", len(p.count), want)
		}
		fs.EachRecord(func(r *kgo.Record) {
			var e events.Envelope
			if err := json.Unmarshal(r.Value, &e); err != nil {
				f.t.Fatalf("record value is not an envelope: %v", err)
			}
			if string(r.Key) != e.OrderID {
				f.t.Errorf("record key %q, want the order id %s", r.Key, e.OrderID)
			}
			if h := header(r, "event_id"); h != e.EventID.String() {
				f.t.Errorf("event_id header %q, want %s", h, e.EventID)
			}
			p.count[e.EventID]++
			p.perOrder[e.OrderID] = append(p.perOrder[e.OrderID], e.Version)
			p.total++
		})
	}
	return p
}

func header(r *kgo.Record, key string) string {
	for _, h := range r.Headers {
		if h.Key == key {
			return string(h.Value)
		}
	}
	return ""
}

// checkFirstAppearancesInOrder: per order, the first time each version appears, it appears in 1..N order.
func checkFirstAppearancesInOrder(t *testing.T, p published) {
	t.Helper()
	for order, versions := range p.perOrder {
		next := int64(1)
		for _, v := range versions {
			if v == next {
				next++
			} else if v > next {
				t.Fatalf("order %s: version %d appeared before version %d (sequence %v)", order, v, next, versions)
			}
		}
	}
}

func drain(t *testing.T, r *relay.Relay, f *fixture) {
	t.Helper()
	for i := 0; f.outbox() > 0; i++ {
		if i > 1000 {
			t.Fatalf("outbox still holds %d rows after 1000 batches", f.outbox())
		}
		if _, err := r.RunOnce(context.Background()); err != nil {
			t.Fatalf("RunOnce: %v", err)
		}
	}
}

func TestLateCommitterIsPublished(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := sharedFixture(t)
	r := f.relay()

	// T1 takes an outbox id first and stays open.
	late := uuid.NewString()
	tx, err := f.pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	if _, err := tx.Exec(ctx, `WITH ev AS (
		INSERT INTO events (stream_id, version, event_id, type, schema_version, data, metadata, occurred_at)
		VALUES ($1, 1, $2, 'OrderItemRemoved', 1, '{"sku":"late"}', '{"correlation_id":"c","causation_id":"r","actor":"a"}', now())
		RETURNING position, stream_id, version)
		INSERT INTO outbox (position, stream_id, version) SELECT position, stream_id, version FROM ev`, late, uuid.Must(uuid.NewV7())); err != nil {
		t.Fatal(err)
	}
	// Later transactions commit and are published.
	for i := range 2 {
		if _, err := f.appendNext(ctx, uuid.NewString(), i); err != nil {
			t.Fatal(err)
		}
	}
	drain(t, r, f)
	if n, err := r.RunOnce(ctx); n != 0 || err != nil {
		t.Fatalf("RunOnce with only the open transaction's row = %d, %v; want 0, nil", n, err)
	}
	// T1 commits after the relay moved past higher ids.
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if n, err := r.RunOnce(ctx); n != 1 || err != nil {
		t.Fatalf("RunOnce after the late commit = %d, %v; want 1, nil", n, err)
	}
	p := f.read(3)
	if len(p.perOrder[late]) != 1 {
		t.Fatalf("the late committer's event appears %d times, want once", len(p.perOrder[late]))
	}
}

func TestRolledBackHolesNeitherStallNorSkip(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := sharedFixture(t)
	r := f.relay()
	committed := 0
	for i := range 30 {
		if i%3 == 0 { // a transaction that appends and rolls back leaves a hole in the id sequence
			tx, err := f.pool.Begin(ctx)
			if err != nil {
				t.Fatal(err)
			}
			_, err = tx.Exec(ctx, `INSERT INTO outbox (position, stream_id, version) VALUES ($1::bigint, gen_random_uuid(), 1)`, -int64(i+1))
			_ = tx.Rollback(ctx)
			if err != nil {
				t.Fatal(err)
			}
			continue
		}
		if _, err := f.appendNext(ctx, uuid.NewString(), i); err != nil {
			t.Fatal(err)
		}
		committed++
	}
	drain(t, r, f) // bounded: fails after 1000 batches
	p := f.read(committed)
	for id := range f.allEventIDs() {
		if p.count[id] == 0 {
			t.Errorf("event %s was never published", id)
		}
	}
}

func TestTwoRelaysNeverPublishTheSameBatch(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	f := sharedFixture(t)
	var wg sync.WaitGroup
	for range 2 {
		r := f.relay()
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = r.Run(ctx, relay.Polling{MinPoll: time.Millisecond, MaxPoll: 5 * time.Millisecond, StandbyPoll: 5 * time.Millisecond,
				ErrorBackoff: 10 * time.Millisecond, MaxErrorBackoff: 100 * time.Millisecond})
		}()
	}
	orders := make([]string, 20)
	for i := range orders {
		orders[i] = uuid.NewString()
	}
	var writers sync.WaitGroup
	for w := range 4 {
		writers.Add(1)
		go func() {
			defer writers.Done()
			for i := range 100 {
				if _, err := f.appendNext(ctx, orders[(w*100+i)%len(orders)], i); err != nil {
					t.Errorf("append: %v", err)
					return
				}
			}
		}()
	}
	writers.Wait()
	want := len(f.allEventIDs())
	p := f.read(want)
	deadline := time.Now().Add(30 * time.Second)
	for f.outbox() > 0 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	wg.Wait()
	time.Sleep(200 * time.Millisecond) // let any stray record land before the final count
	p = f.read(want)
	for id, n := range p.count {
		if n != 1 {
			t.Errorf("event %s published %d times by two relays; want once", id, n)
		}
	}
	checkFirstAppearancesInOrder(t, p)
}

func TestKillNineMidBatchLosesNothing(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := sharedFixture(t)
	bin := filepath.Join(t.TempDir(), "outbox-relay")
	if out, err := exec.Command("go", "build", "-o", bin, "../../services/outbox-relay").CombinedOutput(); err != nil {
		t.Fatalf("build the relay: %v\n%s", err, out)
	}
	var dbURL string
	if err := f.pool.QueryRow(ctx, "SELECT current_database()").Scan(&dbURL); err != nil {
		t.Fatal(err)
	}
	connString := f.pool.Config().ConnString()
	start := func() *exec.Cmd {
		cmd := exec.Command(bin)
		cmd.Env = append(os.Environ(), "DATABASE_URL="+connString, "KAFKA_BROKERS="+f.brokers[0], "EVENTS_TOPIC="+f.topic,
			"HTTP_ADDR=127.0.0.1:0", "RELAY_BATCH_SIZE=50", "RELAY_MAX_POLL_INTERVAL=5ms")
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		return cmd
	}
	// Writers keep appending across 50 orders while the relay is killed and restarted.
	orders := make([]string, 50)
	for i := range orders {
		orders[i] = uuid.NewString()
	}
	var written atomic.Int64
	var writers sync.WaitGroup
	for w := range 4 {
		writers.Add(1)
		go func() {
			defer writers.Done()
			for i := range 500 {
				if _, err := f.appendNext(ctx, orders[(w*500+i)%len(orders)], i); err != nil {
					t.Errorf("append: %v", err)
					return
				}
				written.Add(1)
			}
		}()
	}
	cmd := start()
	for _, at := range []int64{400, 900, 1400} { // three kills while batches are in flight
		for written.Load() < at {
			time.Sleep(2 * time.Millisecond)
		}
		_ = cmd.Process.Signal(syscall.SIGKILL)
		_ = cmd.Wait()
		cmd = start()
	}
	defer func() { _ = cmd.Process.Signal(syscall.SIGTERM); _ = cmd.Wait() }()
	writers.Wait()
	deadline := time.Now().Add(60 * time.Second)
	for f.outbox() > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("outbox still holds %d rows 60 s after the restart", f.outbox())
		}
		time.Sleep(50 * time.Millisecond)
	}
	ids := f.allEventIDs()
	if len(ids) != 2000 {
		t.Fatalf("%d events stored, want 2000", len(ids))
	}
	p := f.read(len(ids))
	for id := range ids {
		if p.count[id] == 0 {
			t.Errorf("event %s never reached Kafka", id)
		}
	}
	checkFirstAppearancesInOrder(t, p)
	t.Logf("%d records for %d events (%d duplicates from the kill)", p.total, len(ids), p.total-len(ids))
}

func TestKafkaOutageUnderLoad(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	broker := testenv.StartKafka(t)
	adm := kadm.NewClient(mustClient(t, broker.Brokers()))
	topic := testenv.Name(t)
	if problems, err := relay.EnsureTopic(ctx, adm, topic, 3, 1); err != nil || len(problems) > 0 {
		t.Fatalf("EnsureTopic = %v, %v", problems, err)
	}
	f := newFixture(t, broker.Brokers(), topic)
	r := f.relay()
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = r.Run(ctx, relay.Polling{MinPoll: time.Millisecond, MaxPoll: 5 * time.Millisecond, StandbyPoll: 5 * time.Millisecond,
			ErrorBackoff: 50 * time.Millisecond, MaxErrorBackoff: 500 * time.Millisecond})
	}()
	var failed atomic.Int64
	write := func(n int) {
		for i := range n {
			if _, err := f.appendNext(ctx, uuid.NewString(), i); err != nil {
				failed.Add(1)
			}
		}
	}
	write(200)
	broker.Stop()
	write(500) // commands go on while Kafka is down
	broker.Start()
	write(200)
	if n := failed.Load(); n != 0 {
		t.Fatalf("%d appends failed while Kafka was down; want none", n)
	}
	deadline := time.Now().Add(90 * time.Second)
	for f.outbox() > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("outbox still holds %d rows 90 s after Kafka came back", f.outbox())
		}
		time.Sleep(100 * time.Millisecond)
	}
	ids := f.allEventIDs()
	p := f.read(len(ids))
	for id := range ids {
		if p.count[id] == 0 {
			t.Errorf("event %s missing from the topic after the outage", id)
		}
	}
	cancel()
	<-done
}

func TestUnsafeTopicIsReported(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	adm := testenv.Admin(t)
	topic := testenv.Name(t)
	week, compact := "604800000", "compact"
	if _, err := adm.CreateTopic(ctx, 1, 1, map[string]*string{"retention.ms": &week, "cleanup.policy": &compact}, topic); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _, _ = adm.DeleteTopics(context.Background(), topic) })
	problems, err := relay.EnsureTopic(ctx, adm, topic, 3, 1)
	if err != nil {
		t.Fatal(err)
	}
	if len(problems) != 2 {
		t.Fatalf("problems = %v, want retention.ms and cleanup.policy reported", problems)
	}
	fresh := testenv.Name(t)
	t.Cleanup(func() { _, _ = adm.DeleteTopics(context.Background(), fresh) })
	if problems, err := relay.EnsureTopic(ctx, adm, fresh, 3, 1); err != nil || len(problems) != 0 {
		t.Fatalf("EnsureTopic(new) = %v, %v; want created with no problems", problems, err)
	}
	if problems, err := relay.EnsureTopic(ctx, adm, fresh, 3, 1); err != nil || len(problems) != 0 {
		t.Fatalf("EnsureTopic(the topic it created) = %v, %v; want no problems", problems, err)
	}
}

func mustClient(t *testing.T, brokers []string) *kgo.Client {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}
