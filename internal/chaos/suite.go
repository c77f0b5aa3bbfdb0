package chaos

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"syscall"
	"time"

	"github.com/opensearch-project/opensearch-go/v2"

	"github.com/orders-oss/orders/internal/rebuild"
)

// Step is one kind of fault in a scenario, injected Count times while the workload runs.
type Step struct {
	Fault  string        // as the report names it: "kill -9 outbox-relay"
	Count  int           // how many times
	Hold   time.Duration // how long each lasts before the heal
	Target time.Duration // the promised bound on the measured time (0: none)
	// Takeover: what is measured (and held to Target) is the time from the fault until the pipeline
	// is live again while the fault lasts (a standby taking over), not the time after the heal.
	Takeover bool
	New      func(e *Env, w *Workload) Fault
}

// Scenario is a workload under a sequence of faults, followed by the checks.
type Scenario struct {
	Name    string
	Promise string // what it checks, in a sentence
	Steps   []Step
	// Setup and Teardown run before the workload starts and after it stopped (a standby relay,
	// projectors with dynamic membership).
	Setup, Teardown func(ctx context.Context, e *Env) error
	// Comparison: measured to compare with another scenario; its recovery times are not promises.
	Comparison bool
}

// FaultResult is one fault as it happened.
type FaultResult struct {
	Fault    string
	Injected time.Time
	Healed   time.Time
	// Recovery is the time from the heal until the pipeline was live again.
	Recovery time.Duration
	// Takeover, for a Takeover step, is the time from the fault until the pipeline was live again;
	// Lease until the other relay held the lease.
	Takeover time.Duration
	Lease    time.Duration
	Err      string
}

// Result is a scenario as it ran, and the checker's verdict.
type Result struct {
	Scenario Scenario
	Start    time.Time
	Duration time.Duration
	Faults   []FaultResult
	Canaries int
	Verdict  Verdict
	// TopicBefore is the topic as the scenario found it (to tell what it added).
	TopicBefore TopicStats
}

// OK reports whether every promise of the scenario held.
func (r Result) OK() bool { return r.Verdict.OK() }

// Runner runs scenarios on an Env.
type Runner struct {
	Env        *Env
	Client     *Client
	OpenSearch *opensearch.Client
	Clients    int     // concurrent workload clients
	Rate       float64 // commands per second, all clients together
	Gap        time.Duration
	// RecoveryTimeout bounds the wait for the pipeline after each heal; SettleTimeout the wait for it
	// to catch up after the scenario.
	RecoveryTimeout, SettleTimeout time.Duration
	Progress                       io.Writer

	topic *TopicStats // as the last scenario left it
}

// Baseline reads the topic as the suite finds it, so that the first scenario's report says what it
// added.
func (r *Runner) Baseline(ctx context.Context) error {
	recs, err := ReadTopic(ctx, r.Env.Stack.Brokers, r.Env.Stack.Topic)
	if err != nil {
		return err
	}
	st := CountTopic(recs)
	r.topic = &st
	return nil
}

func (r *Runner) say(format string, args ...any) {
	if r.Progress != nil {
		fmt.Fprintf(r.Progress, "%s chaos: "+format+"\n", append([]any{time.Now().Format("15:04:05.000")}, args...)...)
	}
}

// Run runs one scenario: setup, the workload with every fault of every step, teardown, the wait
// until the pipeline has caught up, and the checks. An error means the suite cannot go on (the API
// refused the credentials); broken promises are in the result's verdict.
func (r *Runner) Run(ctx context.Context, sc Scenario) (Result, error) {
	res := Result{Scenario: sc, Start: time.Now()}
	var extra findings
	e := r.Env
	r.say("scenario %q", sc.Name)
	if sc.Setup != nil {
		if err := sc.Setup(ctx, e); err != nil {
			extra.add(PromiseSettled, "setup: %v", err)
		}
	}
	w := &Workload{Client: r.Client, Rec: e.Rec, Scenario: sc.Name, Clients: r.Clients, Rate: r.Rate}
	w.Start(ctx)
	time.Sleep(2 * time.Second)
	if _, s, err := e.Pipeline.Recovery(ctx, time.Now(), 100*time.Millisecond, r.RecoveryTimeout); err != nil {
		extra.add(PromiseSettled, "not live before the first fault: %s", s)
	}
	for _, step := range sc.Steps {
		for i := range step.Count {
			if ctx.Err() != nil {
				break
			}
			fr := r.fault(ctx, e, w, step)
			r.say("%s (%d/%d): recovery %s%s%s", step.Fault, i+1, step.Count, fr.Recovery.Round(time.Millisecond),
				map[bool]string{true: fmt.Sprintf(", lease taken over after %s, live after %s", fr.Lease.Round(time.Millisecond), fr.Takeover.Round(time.Millisecond))}[step.Takeover],
				map[bool]string{true: ", " + fr.Err}[fr.Err != ""])
			res.Faults = append(res.Faults, fr)
			if fr.Err != "" {
				extra.add(PromiseRecovery, "%s at %s: %s", step.Fault, fr.Injected.Format("15:04:05.000"), fr.Err)
			}
			measured := fr.Recovery
			if step.Takeover {
				measured = fr.Takeover
			}
			if step.Target > 0 && !sc.Comparison && fr.Err == "" && measured > step.Target {
				extra.add(PromiseRecovery, "%s at %s: %s, target %s", step.Fault, fr.Injected.Format("15:04:05.000"),
					measured.Round(time.Millisecond), step.Target)
			}
			time.Sleep(r.Gap)
		}
	}
	if err := w.Stop(); err != nil {
		return res, err
	}
	if sc.Teardown != nil {
		if err := sc.Teardown(context.WithoutCancel(ctx), e); err != nil {
			extra.add(PromiseSettled, "teardown: %v", err)
		}
	}
	if err := ctx.Err(); err != nil {
		res.Duration = time.Since(res.Start)
		res.Verdict.Findings = append(extra.done(), Finding{PromiseSettled, "interrupted before the checks: nothing was proven"})
		return res, fmt.Errorf("interrupted during %q: %w", sc.Name, err)
	}
	r.say("workload stopped; waiting until the pipeline has caught up")
	settle := &Workload{Client: r.Client, Rec: e.Rec, Scenario: sc.Name}
	n, err := e.Pipeline.Settle(ctx, settle, r.SettleTimeout)
	res.Canaries = n
	if err != nil {
		extra.add(PromiseSettled, "%v", err)
	}
	r.say("caught up (%d canary orders); checking", n)
	ev, err := r.Evidence(ctx, sc.Name)
	if err != nil {
		extra.add(PromiseSettled, "gather evidence: %v", err)
	}
	res.Verdict = Check(ev)
	if r.topic != nil {
		res.TopicBefore = *r.topic
	}
	r.topic = &res.Verdict.Topic
	res.Verdict.Findings = append(res.Verdict.Findings, extra.done()...)
	res.Duration = time.Since(res.Start)
	r.say("scenario %q: %d findings, %s", sc.Name, len(res.Verdict.Findings), res.Duration.Round(time.Second))
	for _, f := range res.Verdict.Findings {
		r.say("  FINDING %s: %s", f.Promise, f.Detail)
	}
	return res, nil
}

func (r *Runner) fault(ctx context.Context, e *Env, w *Workload, step Step) FaultResult {
	fr := FaultResult{Fault: step.Fault}
	f := step.New(e, w)
	fr.Injected = time.Now()
	// A heal runs to its end even when the suite is interrupted: nothing stays killed or stopped.
	hctx := context.WithoutCancel(ctx)
	if err := f.Inject(ctx); err != nil {
		fr.Err = "inject: " + err.Error()
		_ = f.Heal(hctx) // a half-made fault (a place that failed, a lock not taken) is undone
		return fr
	}
	if o, ok := f.(Observer); ok && step.Takeover {
		took, err := o.Observe(ctx, fr.Injected, step.Hold)
		fr.Takeover, fr.Lease = took.Live, took.Lease
		if err != nil {
			fr.Err = err.Error()
		}
	} else {
		time.Sleep(time.Until(fr.Injected.Add(step.Hold)))
	}
	fr.Healed = time.Now()
	if err := f.Heal(hctx); err != nil {
		fr.Err = "heal: " + err.Error()
		return fr
	}
	rec, s, err := e.Pipeline.Recovery(ctx, fr.Healed, 100*time.Millisecond, r.RecoveryTimeout)
	fr.Recovery = rec
	switch {
	case ctx.Err() != nil:
		fr.Err = "interrupted"
	case err != nil && fr.Err == "":
		fr.Err = fmt.Sprintf("not live %s after the heal: %s", r.RecoveryTimeout, s)
	}
	return fr
}

// Evidence gathers what the checker needs: the store, the topic, both read models and their parking.
func (r *Runner) Evidence(ctx context.Context, scenario string) (Evidence, error) {
	e := r.Env
	ev := Evidence{Prefix: e.Rec.Prefix(), Commands: e.Rec.Commands(""), Scenario: scenario}
	var err error
	if ev.Store, err = ReadStore(ctx, e.Pool); err != nil {
		return ev, fmt.Errorf("read the event store: %w", err)
	}
	if ev.Topic, err = ReadTopic(ctx, e.Stack.Brokers, e.Stack.Topic); err != nil {
		return ev, fmt.Errorf("read the topic: %w", err)
	}
	seen := map[string]bool{}
	var orders []string
	for _, x := range ev.Store {
		if !seen[x.OrderID] {
			seen[x.OrderID] = true
			orders = append(orders, x.OrderID)
		}
	}
	sort.Strings(orders)
	if keys, err := e.Stack.Keys(e.Pool); err != nil {
		for _, target := range rebuild.Targets {
			ev.Models = append(ev.Models, ModelEvidence{Name: string(target), Err: err, Parked: map[string]ParkedOrder{}})
		}
	} else {
		ev.Models = ReadModels(ctx, e.Pool, r.OpenSearch, e.Stack.Alias, orders, keys)
	}
	e.mu.Lock()
	ev.Poisoned = map[string]int64{}
	for k, v := range e.Poisoned {
		ev.Poisoned[k] = v
	}
	ev.Late = append([]LateRecord(nil), e.Late...)
	e.mu.Unlock()
	return ev, nil
}

// Healthy makes sure the stack is whole after the suite: every server and service running (started
// the way `make up` does when not), every service ready, the pipeline caught up.
func (r *Runner) Healthy(ctx context.Context) error {
	e := r.Env
	for _, name := range []string{Postgres, Kafka, OpenSearch} {
		if _, err := e.Stack.Pid(name); err != nil {
			if err := e.Stack.Start(ctx, name, e.ScriptLog); err != nil {
				return err
			}
		}
		_ = e.Stack.Signal(name, syscall.SIGCONT) // never leave a server stopped
	}
	if err := e.Stack.Start(ctx, CommandAPI, e.ScriptLog); err != nil { // every service not running
		return err
	}
	for _, name := range services {
		_ = e.Stack.Signal(name, syscall.SIGCONT) // a relay leader paused when the suite was interrupted
	}
	for _, name := range services {
		if err := waitReady(ctx, e.Stack.URL(name), 60*time.Second, nil); err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
	}
	_, err := e.Pipeline.WaitCaughtUp(ctx, 100*time.Millisecond, r.SettleTimeout)
	return err
}

// Ready reports whether every service of the stack runs (by its pid file) and is ready.
func (s Stack) Ready(ctx context.Context) error {
	var errs []error
	for _, name := range append([]string{Postgres, Kafka, OpenSearch}, services...) {
		if _, err := s.Pid(name); err != nil {
			errs = append(errs, err)
		}
	}
	for _, name := range services {
		if err := waitReady(ctx, s.URL(name), 2*time.Second, nil); err != nil {
			errs = append(errs, fmt.Errorf("%s at %s: %w", name, s.URL(name), err))
		}
	}
	return errors.Join(errs...)
}
