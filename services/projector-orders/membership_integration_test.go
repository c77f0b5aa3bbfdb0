//go:build integration

package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/orders-oss/orders/internal/testenv"
	"github.com/orders-oss/orders/pkg/events"
)

// member is one projector-orders process of a test's group.
type member struct {
	t    *testing.T
	cmd  *exec.Cmd
	log  string
	done chan error
}

type group struct {
	t       *testing.T
	bin     string
	env     []string
	pool    *pgxpool.Pool
	adm     *kadm.Client
	brokers []string
	topic   string
	name    string
}

func newGroup(t *testing.T, partitions int32, session string) *group {
	t.Helper()
	ctx := context.Background()
	dbURL := testenv.PostgresURL(t)
	pool, err := pgxpool.New(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	g := &group{t: t, pool: pool, adm: testenv.Admin(t), brokers: testenv.KafkaBrokers(t), topic: testenv.Topic(t, partitions), name: testenv.Name(t)}
	g.bin = filepath.Join(t.TempDir(), "projector-orders")
	if out, err := exec.Command("go", "build", "-o", g.bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	g.env = []string{"AUTH_MODE=dev", "AUTH_DEV_DIR=" + t.TempDir(), "PII_MASTER_KEY_FILE=" + masterFile(t), "DATABASE_URL=" + dbURL, "KAFKA_BROKERS=" + strings.Join(g.brokers, ","), "EVENTS_TOPIC=" + g.topic,
		"PROJECTOR_GROUP=" + g.name, "PROJECTOR_SESSION_TIMEOUT=" + session, "HTTP_DRAIN_DELAY=0s", "PATH=" + os.Getenv("PATH")}
	return g
}

func (g *group) start(instance string) *member {
	g.t.Helper()
	m := &member{t: g.t, log: filepath.Join(g.t.TempDir(), instance+".log"), done: make(chan error, 1)}
	f, err := os.Create(m.log)
	if err != nil {
		g.t.Fatal(err)
	}
	m.cmd = exec.Command(g.bin)
	m.cmd.Env = append(g.env, "HTTP_ADDR="+testenv.FreeAddr(g.t), "PROJECTOR_INSTANCE_ID="+instance)
	m.cmd.Stdout, m.cmd.Stderr = f, f
	if err := m.cmd.Start(); err != nil {
		g.t.Fatal(err)
	}
	go func() { m.done <- m.cmd.Wait(); f.Close() }()
	g.t.Cleanup(func() { _ = m.cmd.Process.Kill(); <-m.done })
	return m
}

func (m *member) kill9() {
	m.t.Helper()
	_ = m.cmd.Process.Signal(syscall.SIGKILL)
	<-m.done
	m.done <- nil // for the cleanup
}

func (m *member) output() string {
	b, _ := os.ReadFile(m.log)
	return string(b)
}

// place produces n new orders (one OrderPlaced each) and returns when the broker has them.
func (g *group) place(n int) {
	g.t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(g.brokers...))
	if err != nil {
		g.t.Fatal(err)
	}
	defer cl.Close()
	var recs []*kgo.Record
	for i := range n {
		id := uuid.NewString()
		typ, sv, data, err := events.EncodeAt(events.OrderPlaced{Customer: events.Customer{ID: fmt.Sprintf("c-%d", i), Name: events.Plain("Ada"), Email: events.Plain("a@x.io")},
			ShippingAddress: events.Plain(events.Address{Name: "Ada", Line1: "1", City: "London", PostalCode: "N1", Country: "GB"}), Currency: "EUR",
			Items: []events.LineItem{{SKU: "BK-1", Name: "Notes", Quantity: 1, UnitPrice: 1000}}}, 1) // plain text: no key needed
		if err != nil {
			g.t.Fatal(err)
		}
		b, _ := json.Marshal(events.Envelope{EventID: uuid.Must(uuid.NewV7()), OrderID: id, Version: 1, Type: typ, SchemaVersion: sv,
			Data: data, OccurredAt: time.Now().UTC(), RecordedAt: time.Now().UTC()})
		recs = append(recs, &kgo.Record{Topic: g.topic, Key: []byte(id), Value: b})
	}
	if err := cl.ProduceSync(context.Background(), recs...).FirstErr(); err != nil {
		g.t.Fatal(err)
	}
}

// waitOrders waits until the read model holds want orders and returns how long that took.
func (g *group) waitOrders(want int, within time.Duration, ms ...*member) time.Duration {
	g.t.Helper()
	began := time.Now()
	for {
		var n int
		if err := g.pool.QueryRow(context.Background(), "SELECT count(*) FROM orders_read.orders").Scan(&n); err != nil && !strings.Contains(err.Error(), "does not exist") {
			g.t.Fatal(err)
		}
		if n == want {
			return time.Since(began)
		}
		if time.Since(began) > within {
			var logs strings.Builder
			for _, m := range ms {
				logs.WriteString(m.output())
			}
			g.t.Fatalf("after %s the read model holds %d orders, want %d; logs:\n%s", within, n, want, logs.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// members returns the instance ids of the group's members and how many partitions each holds.
func (g *group) members() map[string]int {
	g.t.Helper()
	described, err := g.adm.DescribeGroups(context.Background(), g.name)
	if err != nil {
		g.t.Fatal(err)
	}
	out := map[string]int{}
	for _, m := range described[g.name].Members {
		id := m.MemberID
		if m.InstanceID != nil {
			id = *m.InstanceID
		}
		n := 0
		if a, ok := m.Assigned.AsConsumer(); ok {
			for _, t := range a.Topics {
				n += len(t.Partitions)
			}
		}
		out[id] = n
	}
	return out
}

func (g *group) waitMembers(within time.Duration, ok func(map[string]int) bool) map[string]int {
	g.t.Helper()
	deadline := time.Now().Add(within)
	for {
		m := g.members()
		if ok(m) {
			return m
		}
		if time.Now().After(deadline) {
			g.t.Fatalf("after %s the group's members are %v", within, m)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// A projector killed with -9 and restarted with the same instance id (static membership) takes its
// partitions back at once: it does not wait for its dead predecessor's session (45 s here) to expire.
func TestRestartedStaticMemberResumesAtOnce(t *testing.T) {
	t.Parallel()
	g := newGroup(t, 3, "45s")
	g.place(20)
	first := g.start("p-1")
	g.waitOrders(20, 60*time.Second, first)
	first.kill9()
	g.place(20)
	second := g.start("p-1")
	took := g.waitOrders(40, 60*time.Second, second)
	t.Logf("after kill -9 and restart: the 20 new orders were in the read model %s after the restart", took.Round(time.Millisecond))
	// Far below the 45 s session a dynamic member would have waited for (44.6 s measured before).
	if took > 20*time.Second {
		t.Errorf("the restarted member took %s to catch up; static membership should not wait for the 45 s session", took)
	}
}

// Two replicas with distinct instance ids split the partitions; one gone for good (kill -9, never
// back) is replaced after the session timeout, and the other then projects everything.
func TestStaticMembersSplitAndAreReplacedAfterTheSession(t *testing.T) {
	t.Parallel()
	g := newGroup(t, 4, "6s")
	a, b := g.start("p-a"), g.start("p-b")
	split := g.waitMembers(60*time.Second, func(m map[string]int) bool { return len(m) == 2 && m["p-a"] > 0 && m["p-b"] > 0 })
	t.Logf("two members: %v", split)
	g.place(30)
	g.waitOrders(30, 60*time.Second, a, b)
	b.kill9()
	g.place(30)
	g.waitMembers(60*time.Second, func(m map[string]int) bool { return len(m) == 1 && m["p-a"] == 4 })
	g.waitOrders(60, 60*time.Second, a)
	// A graceful stop of a static member leaves the group at once (a new pod has a new name: without
	// the leave, its partitions would wait for the session timeout).
	_ = a.cmd.Process.Signal(syscall.SIGTERM)
	if err := <-a.done; err != nil {
		t.Fatalf("after SIGTERM the projector exited with %v, want 0; log:\n%s", err, a.output())
	}
	a.done <- nil
	g.waitMembers(5*time.Second, func(m map[string]int) bool { return len(m) == 0 })
}
