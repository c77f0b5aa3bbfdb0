package chaos

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/orders-oss/orders/internal/eventstore"
	"github.com/orders-oss/orders/pkg/events"
)

// Fault is one fault: Inject starts it, Heal ends it (restarts what was killed, continues what was
// stopped, commits what was held).
type Fault interface {
	Inject(ctx context.Context) error
	Heal(ctx context.Context) error
}

// Observer is a fault that measures something while it lasts (a standby's takeover).
type Observer interface {
	// Observe runs from the injection for hold and returns what it measured.
	Observe(ctx context.Context, injected time.Time, hold time.Duration) (Takeover, error)
}

// Takeover is how long the other relay took, from the pause of the leader: to hold the lease (its
// relay_leader gauge), and until the pipeline was live again.
type Takeover struct {
	Lease, Live time.Duration
}

// Env is what the faults act on and what they leave for the checker.
type Env struct {
	Stack     Stack
	Pool      *pgxpool.Pool
	Kafka     *kgo.Client
	Pipeline  *Pipeline
	Rec       *Recorder
	ScriptLog *os.File
	// ServiceEnv is added to the environment of services the faults restart
	// (PROJECTOR_INSTANCE_ID=none while dynamic membership is measured).
	ServiceEnv []string
	Standby    *Standby

	mu sync.Mutex
	// Poisoned holds the orders a poison record was produced for, with the version the read models
	// must hold them at (the last one before the poison).
	Poisoned map[string]int64
	Late     []LateRecord
}

// LateRecord is what a late commit left for the checker.
type LateRecord struct {
	OrderID  string
	Command  string
	Position int64
	// Overtaken is how many events with a higher position committed while it was open (the trap:
	// it must be more than 0 for the fault to mean anything).
	Overtaken int64
}

// Kill is kill -9 of a server or service, restarted as deploy/local does at the heal.
type Kill struct {
	Env  *Env
	Name string
}

func (f Kill) Inject(context.Context) error { return f.Env.Stack.Signal(f.Name, syscall.SIGKILL) }

func (f Kill) Heal(ctx context.Context) error {
	var err error
	for attempt := range 3 {
		// A killed postmaster's backends may hold its shared memory for a moment: pg_ctl then refuses.
		if err = f.Env.Stack.Start(ctx, f.Name, f.Env.ScriptLog, f.Env.ServiceEnv...); err == nil {
			return nil
		}
		time.Sleep(time.Duration(attempt+1) * time.Second)
	}
	return err
}

// Pause is SIGSTOP of a server or service, SIGCONT at the heal.
type Pause struct {
	Env  *Env
	Name string
}

func (f Pause) Inject(context.Context) error { return f.Env.Stack.Signal(f.Name, syscall.SIGSTOP) }
func (f Pause) Heal(context.Context) error   { return f.Env.Stack.Signal(f.Name, syscall.SIGCONT) }

// PauseLeader is SIGSTOP of whichever relay leads (the stack's or the standby, by their relay_leader
// gauge); the other must take over. It needs Env.Standby.
type PauseLeader struct {
	Env    *Env
	paused int
	other  string // the metrics URL of the relay that must take over
}

func (f *PauseLeader) Inject(ctx context.Context) error {
	sb := f.Env.Standby
	if sb == nil {
		return errors.New("no standby relay runs")
	}
	main := f.Env.Stack.URL(Relay) + "/metrics"
	deadline := time.Now().Add(15 * time.Second) // just after a takeover the lease may be changing hands
	for {
		mainLeads, _ := gauge(ctx, main, "relay_leader")
		sbLeads, _ := gauge(ctx, sb.URL+"/metrics", "relay_leader")
		switch {
		case mainLeads == 1 && sbLeads != 1:
			pid, err := f.Env.Stack.Pid(Relay)
			if err != nil {
				return err
			}
			f.paused, f.other = pid, sb.URL+"/metrics"
		case sbLeads == 1 && mainLeads != 1:
			f.paused, f.other = sb.Pid(), main
		}
		if f.paused != 0 {
			return syscall.Kill(f.paused, syscall.SIGSTOP)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("no single relay leads (stack's relay_leader %v, standby's %v)", mainLeads, sbLeads)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// Observe measures the takeover: from the pause until the other relay holds the lease, and until
// the pipeline is live again.
func (f *PauseLeader) Observe(ctx context.Context, injected time.Time, hold time.Duration) (Takeover, error) {
	end := injected.Add(hold)
	var t Takeover
	for time.Now().Before(end) {
		if t.Lease == 0 {
			if v, _ := gauge(ctx, f.other, "relay_leader"); v == 1 {
				t.Lease = time.Since(injected)
			}
		}
		if t.Lease != 0 && t.Live == 0 {
			if s := f.Env.Pipeline.Sample(ctx); s.Live() {
				t.Live = s.At.Sub(injected)
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	switch {
	case t.Lease == 0:
		return t, fmt.Errorf("the other relay did not take the lease in the %s the leader was paused", hold)
	case t.Live == 0:
		return t, fmt.Errorf("the other relay took the lease after %s, but the pipeline was not live before the leader resumed", t.Lease.Round(time.Millisecond))
	}
	return t, nil
}

func (f *PauseLeader) Heal(context.Context) error {
	if f.paused == 0 {
		return nil
	}
	return syscall.Kill(f.paused, syscall.SIGCONT)
}

// LateCommit is a transaction that appends an event (an item added to an order of its own) and its
// outbox row, and stays open while the workload commits later events: its position and outbox id are
// below theirs. It commits at the heal; the relay must still publish it and both projectors apply it.
type LateCommit struct {
	Env      *Env
	Workload *Workload

	tx  interface{ Commit(context.Context) error }
	cmd *Command
	rec LateRecord
}

func (f *LateCommit) Inject(ctx context.Context) error {
	o, err := placeOwn(ctx, f.Workload)
	if err != nil {
		return err
	}
	tx, err := f.Env.Pool.Begin(ctx)
	if err != nil {
		return err
	}
	if _, err := tx.Exec(ctx, "SET LOCAL idle_in_transaction_session_timeout = '5min'"); err != nil {
		_ = tx.Rollback(ctx)
		return err
	}
	c := f.Env.Rec.New(f.Workload.Scenario, LateAddItem, o.ID)
	typ, sv, data, err := events.Encode(events.OrderItemAdded{Item: events.LineItem{SKU: c.Token, Name: "Late item " + c.Token, Quantity: 1, UnitPrice: 250}})
	if err != nil {
		_ = tx.Rollback(ctx)
		return err
	}
	evs, err := eventstore.AppendTx(ctx, tx, eventstore.AppendRequest{StreamID: o.ID, ExpectedVersion: 1, Events: []eventstore.NewEvent{{
		Type: typ, SchemaVersion: sv, Data: data, OccurredAt: time.Now(),
		Metadata: events.Metadata{CorrelationID: c.ID, CausationID: c.ID, Actor: "chaos"}}}})
	if err != nil {
		_ = tx.Rollback(ctx)
		return fmt.Errorf("late commit: %w", err)
	}
	f.tx, f.cmd, f.rec = tx, c, LateRecord{OrderID: o.ID, Command: c.ID, Position: evs[0].Position}
	return nil
}

func (f *LateCommit) Heal(ctx context.Context) error {
	if f.tx == nil {
		return nil
	}
	if err := f.Env.Pool.QueryRow(ctx, "SELECT count(*) FROM events WHERE position > $1", f.rec.Position).Scan(&f.rec.Overtaken); err != nil {
		f.rec.Overtaken = -1
	}
	c := f.cmd
	c.Attempts = 1
	err := f.tx.Commit(ctx)
	c.End = time.Now()
	if err != nil {
		c.Outcome, c.Error = Unknown, err.Error()
	} else {
		c.Outcome = OK
	}
	f.Env.Rec.Add(*c)
	f.Env.mu.Lock()
	f.Env.Late = append(f.Env.Late, f.rec)
	f.Env.mu.Unlock()
	return err
}

// PoisonValue is the value of a poison record: not JSON, so no projector can decode it; the checker
// knows it by its prefix (also when an earlier run left it parked).
func PoisonValue(run, orderID string) string {
	return fmt.Sprintf("%s run=%s order=%s: not an event", PoisonPrefix, run, orderID)
}

// PoisonPrefix starts every poison record's value.
const PoisonPrefix = "chaos-poison"

// Poison produces an undecodable record into the events topic, keyed by an order of its own (placed
// and published first), then sends two more commands on that order. Both projectors must park the
// order (its later events wait behind the poison) and keep every other order flowing.
type Poison struct {
	Env      *Env
	Workload *Workload
}

func (f Poison) Inject(ctx context.Context) error {
	o, err := placeOwn(ctx, f.Workload)
	if err != nil {
		return err
	}
	// The order's first event goes out before the poison (same key, same partition).
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		var n int
		if err := f.Env.Pool.QueryRow(ctx, "SELECT count(*) FROM outbox WHERE stream_id = $1", o.ID).Scan(&n); err == nil && n == 0 {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("poison: order %s not published in 30 s", o.ID)
		}
	}
	rec := &kgo.Record{Topic: f.Env.Stack.Topic, Key: []byte(o.ID), Value: []byte(PoisonValue(f.Env.Rec.Run, o.ID))}
	if err := f.Env.Kafka.ProduceSync(ctx, rec).FirstErr(); err != nil {
		return fmt.Errorf("produce poison: %w", err)
	}
	f.Env.mu.Lock()
	if f.Env.Poisoned == nil {
		f.Env.Poisoned = map[string]int64{}
	}
	f.Env.Poisoned[o.ID] = 1
	f.Env.mu.Unlock()
	rnd := rand.New(rand.NewPCG(rand.Uint64(), 3))
	f.Workload.On(ctx, &o, AddItem, 0, rnd)
	f.Workload.On(ctx, &o, Pay, o.Total, rnd)
	return nil
}

func (Poison) Heal(context.Context) error { return nil }

// placeOwn places an order no workload client will touch.
func placeOwn(ctx context.Context, w *Workload) (Order, error) {
	rnd := rand.New(rand.NewPCG(rand.Uint64(), 5))
	var last string
	for range 10 {
		if o, ok := w.PlaceOrder(ctx, rnd); ok {
			return o, nil
		}
		cmds := w.Rec.Commands(w.Scenario)
		if len(cmds) > 0 {
			last = cmds[len(cmds)-1].Error
		}
		time.Sleep(500 * time.Millisecond)
	}
	return Order{}, fmt.Errorf("could not place an order of the fault's own (last error: %s)", strings.TrimSpace(last))
}
