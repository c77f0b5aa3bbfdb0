//go:build integration

package relay_test

import (
	"context"
	"errors"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/orders-oss/orders/internal/relay"
	"github.com/orders-oss/orders/internal/testenv"
)

// relayOn is a relay of the fixture's topic on pool, with a short lease.
func (f *fixture) relayOn(pool *pgxpool.Pool, instance string, batch int, lease time.Duration, afterPublish func()) *relay.Relay {
	f.t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(f.brokers...), kgo.RequiredAcks(kgo.AllISRAcks()), kgo.ProducerLinger(time.Millisecond))
	if err != nil {
		f.t.Fatal(err)
	}
	f.t.Cleanup(cl.Close)
	r := relay.New(relay.Config{Pool: pool, Client: cl, Topic: f.topic, BatchSize: batch, Lease: lease, Instance: instance,
		Log: quiet, AfterPublish: afterPublish})
	f.t.Cleanup(r.Close)
	return r
}

func (f *fixture) appendEvents(n int) {
	f.t.Helper()
	for i := range n {
		if _, err := f.appendNext(context.Background(), uuid.NewString(), i); err != nil {
			f.t.Fatal(err)
		}
	}
}

func (f *fixture) leaseHolder() (instance string, epoch int64) {
	f.t.Helper()
	if err := f.pool.QueryRow(context.Background(), "SELECT instance, epoch FROM relay_lease WHERE name = 'outbox'").Scan(&instance, &epoch); err != nil {
		f.t.Fatal(err)
	}
	return instance, epoch
}

// pauseOnce returns an AfterPublish hook that, the first time, says so on paused and waits for resume.
func pauseOnce(paused chan<- struct{}, resume <-chan struct{}) func() {
	var once sync.Once
	return func() { once.Do(func() { close(paused); <-resume }) }
}

// A leader paused between its acks and its commit (as by SIGSTOP) for longer than its lease is
// replaced, and when it wakes it cannot commit: its batch is fenced and the rows it had published
// stay in the outbox for the new leader.
func TestPausedLeaderCannotCommitAfterTakeover(t *testing.T) {
	t.Parallel()
	f := sharedFixture(t)
	f.appendEvents(10)
	const lease = time.Second
	paused, resume := make(chan struct{}), make(chan struct{})
	a := f.relayOn(f.pool, "a", 100, lease, pauseOnce(paused, resume))
	b := f.relayOn(f.pool, "b", 3, lease, nil)
	type result struct {
		n   int
		err error
	}
	done := make(chan result, 1)
	go func() { n, err := a.RunOnce(context.Background()); done <- result{n, err} }()
	<-paused // a published the 10 events and is "paused" before its commit
	if _, err := b.RunOnce(context.Background()); !errors.Is(err, relay.ErrNotLeader) {
		t.Fatalf("standby while the lease is valid: RunOnce = %v, want ErrNotLeader", err)
	}
	time.Sleep(lease + 200*time.Millisecond)
	n, err := b.RunOnce(context.Background())
	if err != nil || n != 3 {
		t.Fatalf("standby after the lease expired: RunOnce = %d, %v; want 3 events published", n, err)
	}
	if holder, _ := f.leaseHolder(); holder != "b" {
		t.Fatalf("lease held by %q after the takeover, want b", holder)
	}
	close(resume)
	res := <-done
	if !errors.Is(res.err, relay.ErrFenced) || res.n != 0 {
		t.Fatalf("the woken former leader: RunOnce = %d, %v; want ErrFenced and nothing committed", res.n, res.err)
	}
	if got := f.outbox(); got != 7 {
		t.Errorf("outbox holds %d rows after the fenced commit, want 7 (the former leader deleted nothing)", got)
	}
	if _, err := a.RunOnce(context.Background()); !errors.Is(err, relay.ErrNotLeader) {
		t.Errorf("the former leader's next batch: RunOnce = %v, want ErrNotLeader", err)
	}
	drain(t, b, f)
	p := f.read(10)
	checkFirstAppearancesInOrder(t, p)
}

// A leader cut off from Postgres (its connections hang, as in a network partition) after publishing
// is replaced once its lease expires; when the partition heals, its commit is fenced.
func TestPartitionedLeaderIsReplacedAndFenced(t *testing.T) {
	t.Parallel()
	f := sharedFixture(t)
	f.appendEvents(10)
	u, err := url.Parse(f.pool.Config().ConnString())
	if err != nil {
		t.Fatal(err)
	}
	proxy := testenv.StartProxy(t, net.JoinHostPort(u.Hostname(), u.Port()))
	u.Host = proxy.Addr()
	viaProxy, err := pgxpool.New(context.Background(), u.String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(viaProxy.Close)
	const lease = time.Second
	a := f.relayOn(viaProxy, "a", 100, lease, func() { proxy.Cut() }) // the partition begins right after the acks
	b := f.relayOn(f.pool, "b", 100, lease, nil)
	done := make(chan error, 1)
	go func() { _, err := a.RunOnce(context.Background()); done <- err }()
	deadline := time.Now().Add(10 * time.Second)
	var n int
	var last error
	for n == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("the standby did not take over within 10 s of the partition (last: %v)", last)
		}
		time.Sleep(100 * time.Millisecond)
		// Besides "not the leader yet", a batch may fail like any batch (its produce deadline is half
		// the 1 s lease, which a busy machine's first produce to the topic can exceed): it is retried,
		// as Run would, and the checks below still want every event published once the standby leads.
		n, last = b.RunOnce(context.Background())
	}
	if n != 10 || f.outbox() != 0 {
		t.Fatalf("the new leader published %d events, outbox holds %d; want 10 and 0", n, f.outbox())
	}
	proxy.Heal()
	select {
	case err := <-done:
		if !errors.Is(err, relay.ErrFenced) {
			t.Fatalf("the former leader after the partition healed: RunOnce = %v, want ErrFenced", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the former leader's commit did not come back within 30 s of the heal")
	}
	if holder, _ := f.leaseHolder(); holder != "b" {
		t.Errorf("lease held by %q, want b", holder)
	}
}

// Two live processes of one instance would steal the lease from each other: the second refuses.
func TestTwoProcessesOfOneInstanceRefused(t *testing.T) {
	t.Parallel()
	f := sharedFixture(t)
	a := f.relayOn(f.pool, "same", 10, time.Second, nil)
	if _, err := a.RunOnce(context.Background()); err != nil {
		t.Fatal(err)
	}
	b := f.relayOn(f.pool, "same", 10, time.Second, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := b.Run(ctx, relay.DefaultPolling); !errors.Is(err, relay.ErrInstanceInUse) {
		t.Fatalf("a second process of instance %q: Run = %v, want ErrInstanceInUse", "same", err)
	}
}

// The real binaries: the leader is SIGSTOPped under load; the standby takes over within the lease plus
// its standby poll; the woken process stays a standby; nothing is lost and first appearances stay in
// order.
func TestSIGSTOPLeaderFailover(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	f := sharedFixture(t)
	bin := filepath.Join(t.TempDir(), "outbox-relay")
	if out, err := exec.Command("go", "build", "-o", bin, "../../services/outbox-relay").CombinedOutput(); err != nil {
		t.Fatalf("build the relay: %v\n%s", err, out)
	}
	const lease, standbyPoll = 2 * time.Second, 100 * time.Millisecond
	type proc struct {
		cmd  *exec.Cmd
		addr string
		log  string
	}
	start := func(instance string) *proc {
		p := &proc{addr: testenv.FreeAddr(t), log: filepath.Join(t.TempDir(), instance+".log")}
		lf, err := os.Create(p.log)
		if err != nil {
			t.Fatal(err)
		}
		p.cmd = exec.Command(bin)
		p.cmd.Env = append(os.Environ(), "DATABASE_URL="+f.pool.Config().ConnString(), "KAFKA_BROKERS="+strings.Join(f.brokers, ","),
			"EVENTS_TOPIC="+f.topic, "HTTP_ADDR="+p.addr, "HTTP_DRAIN_DELAY=0s", "RELAY_INSTANCE_ID="+instance,
			"RELAY_LEASE="+lease.String(), "RELAY_STANDBY_POLL="+standbyPoll.String(), "RELAY_MAX_POLL_INTERVAL=5ms")
		p.cmd.Stdout, p.cmd.Stderr = lf, lf
		if err := p.cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			_ = p.cmd.Process.Signal(syscall.SIGCONT)
			_ = p.cmd.Process.Kill()
			_ = p.cmd.Wait()
			lf.Close()
		})
		return p
	}
	leading := func(p *proc) bool {
		v, ok := testenv.Metric("http://"+p.addr+"/metrics", "relay_leader")
		return ok && v == 1
	}
	ps := []*proc{start("relay-a"), start("relay-b")}
	var writers sync.WaitGroup
	var stop sync.Once
	stopWriting := make(chan struct{})
	orders := make([]string, 20)
	for i := range orders {
		orders[i] = uuid.NewString()
	}
	for w := range 2 {
		writers.Add(1)
		go func() {
			defer writers.Done()
			for i := 0; ; i++ {
				select {
				case <-stopWriting:
					return
				case <-time.After(5 * time.Millisecond):
				}
				if _, err := f.appendNext(ctx, orders[(w*7+i)%len(orders)], i); err != nil {
					t.Errorf("append: %v", err)
					return
				}
			}
		}()
	}
	defer stop.Do(func() { close(stopWriting) })
	var leader, standby *proc
	for deadline := time.Now().Add(30 * time.Second); leader == nil; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			a, _ := os.ReadFile(ps[0].log)
			b, _ := os.ReadFile(ps[1].log)
			t.Fatalf("no relay became leader within 30 s; logs:\n%s\n%s", a, b)
		}
		for i, p := range ps {
			if leading(p) {
				leader, standby = p, ps[1-i]
			}
		}
	}
	time.Sleep(500 * time.Millisecond) // under load
	_ = leader.cmd.Process.Signal(syscall.SIGSTOP)
	stopped := time.Now()
	for !leading(standby) {
		if time.Since(stopped) > 20*time.Second {
			b, _ := os.ReadFile(standby.log)
			t.Fatalf("the standby did not take over within 20 s of SIGSTOP; its log:\n%s", b)
		}
		time.Sleep(20 * time.Millisecond)
	}
	took := time.Since(stopped)
	t.Logf("SIGSTOP of the leader: the standby led %s later (lease %s, standby poll %s)", took.Round(time.Millisecond), lease, standbyPoll)
	// The bound (docs/relay.md): the lease, plus the standby's poll, plus the scrape's own delay.
	if took > lease+standbyPoll+time.Second {
		t.Errorf("takeover took %s, more than the lease %s + standby poll %s (+1 s)", took, lease, standbyPoll)
	}
	time.Sleep(time.Second)
	_ = leader.cmd.Process.Signal(syscall.SIGCONT)
	time.Sleep(lease) // the woken process tries its old batch (fenced) and finds the lease taken
	if leading(leader) {
		t.Errorf("the woken former leader says it leads; want it a standby")
	}
	stop.Do(func() { close(stopWriting) })
	writers.Wait()
	for deadline := time.Now().Add(30 * time.Second); f.outbox() > 0; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("outbox still holds %d rows 30 s after the writers stopped", f.outbox())
		}
	}
	ids := f.allEventIDs()
	p := f.read(len(ids))
	for id := range ids {
		if p.count[id] == 0 {
			t.Errorf("event %s never reached Kafka", id)
		}
	}
	checkFirstAppearancesInOrder(t, p)
	t.Logf("%d events, %d records (%d duplicates)", len(ids), p.total, p.total-len(ids))
}
