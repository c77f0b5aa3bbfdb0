package chaos

import (
	"context"
	"errors"
	"time"

	"github.com/orders-oss/orders/internal/projection"
)

// Recovery targets (issue 11), and the takeover bound of docs/relay.md.
const (
	CrashTarget = 5 * time.Second  // after kill -9 of the relay or a projector
	KafkaTarget = 30 * time.Second // after a Kafka restart
	// TakeoverTarget: a standby takes the lease of a paused leader within RELAY_LEASE +
	// RELAY_STANDBY_POLL (5.5 s by default, docs/relay.md); the backlog then goes out in one batch.
	TakeoverTarget = 6500 * time.Millisecond
)

func kill(name string) func(e *Env, _ *Workload) Fault {
	return func(e *Env, _ *Workload) Fault { return Kill{Env: e, Name: name} }
}

func pause(name string) func(e *Env, _ *Workload) Fault {
	return func(e *Env, _ *Workload) Fault { return Pause{Env: e, Name: name} }
}

func pauseLeader(e *Env, _ *Workload) Fault { return &PauseLeader{Env: e} }
func lateCommit(e *Env, w *Workload) Fault  { return &LateCommit{Env: e, Workload: w} }
func poison(e *Env, w *Workload) Fault      { return Poison{Env: e, Workload: w} }

func startStandby(ctx context.Context, e *Env) error {
	sb, err := e.Stack.StartStandby(ctx)
	e.Standby = sb
	return err
}

func stopStandby(_ context.Context, e *Env) error {
	if e.Standby != nil {
		e.Standby.Stop()
		e.Standby = nil
	}
	return nil
}

// restartProjectors stops both projectors gracefully and starts them again with env added
// (PROJECTOR_INSTANCE_ID=none for dynamic membership; nothing for the default, static).
func restartProjectors(ctx context.Context, e *Env, env []string) error {
	e.ServiceEnv = env
	err := errors.Join(e.Stack.Stop(ProjectorOrders), e.Stack.Stop(ProjectorSearch))
	return errors.Join(err, e.Stack.Start(ctx, ProjectorOrders, e.ScriptLog, env...))
}

// Dynamic is the environment that runs a projector with dynamic group membership.
var Dynamic = []string{"PROJECTOR_INSTANCE_ID=" + projection.DynamicMembership}

const (
	crashHold = 2 * time.Second
	pauseHold = 5 * time.Second
	// leaderHold outlasts the lease (5 s) so that the standby takes over.
	leaderHold = 8 * time.Second
)

// Full is the suite `make chaos` runs (about 10 minutes on 2 cores).
func Full() []Scenario {
	return []Scenario{
		{Name: "relay crash", Promise: "kill -9 of the outbox relay loses and reorders nothing; the restarted process takes its lease back at once",
			Steps: []Step{{Fault: "kill -9 outbox-relay", Count: 10, Hold: crashHold, Target: CrashTarget, New: kill(Relay)}}},
		{Name: "projector-orders crash", Promise: "kill -9 of projector-orders loses nothing; with static membership the restarted member consumes again at once",
			Steps: []Step{{Fault: "kill -9 projector-orders", Count: 10, Hold: crashHold, Target: CrashTarget, New: kill(ProjectorOrders)}}},
		{Name: "projector-search crash", Promise: "kill -9 of projector-search loses nothing; with static membership the restarted member consumes again at once",
			Steps: []Step{{Fault: "kill -9 projector-search", Count: 10, Hold: crashHold, Target: CrashTarget, New: kill(ProjectorSearch)}}},
		{Name: "command API crash", Promise: "kill -9 of the command API mid-request: an acknowledged command is stored once, an unanswered one at most once (retries with the Idempotency-Key are safe)",
			Steps: []Step{{Fault: "kill -9 command", Count: 5, Hold: crashHold, New: kill(CommandAPI)}}},
		{Name: "relay leader paused", Promise: "SIGSTOP of the leading relay: the standby takes over within RELAY_LEASE + RELAY_STANDBY_POLL, and the paused one, woken, commits nothing (fencing)",
			Setup: startStandby, Teardown: stopStandby,
			Steps: []Step{{Fault: "SIGSTOP relay leader", Count: 3, Hold: leaderHold, Target: TakeoverTarget, Takeover: true, New: pauseLeader}}},
		{Name: "OpenSearch paused", Promise: "SIGSTOP of OpenSearch stalls only the search projector, which catches up when it resumes",
			Steps: []Step{{Fault: "SIGSTOP opensearch", Count: 3, Hold: pauseHold, New: pause(OpenSearch)}}},
		{Name: "Kafka crash", Promise: "kill -9 of Kafka: commands keep succeeding, the relay and the projectors catch up once it is back",
			Steps: []Step{{Fault: "kill -9 kafka", Count: 3, Hold: crashHold, Target: KafkaTarget, New: kill(Kafka)}}},
		{Name: "Postgres crash", Promise: "kill -9 of Postgres (postmaster and backends): no acknowledged command is lost, none is stored twice",
			Steps: []Step{{Fault: "kill -9 postgres", Count: 3, Hold: crashHold, New: kill(Postgres)}}},
		{Name: "late commit", Promise: "an event whose transaction commits seconds after later ones is still published and projected",
			Steps: []Step{{Fault: "late-committing transaction", Count: 3, Hold: pauseHold, New: lateCommit}}},
		{Name: "poison record", Promise: "an undecodable record parks its order in both projectors; every other order keeps flowing",
			Steps: []Step{{Fault: "poison record", Count: 2, Hold: time.Second, New: poison}}},
		{Name: "projector crash (dynamic membership)", Comparison: true,
			Promise:  "for comparison: the same kill -9 with PROJECTOR_INSTANCE_ID=none (dynamic membership, as before issue 11)",
			Setup:    func(ctx context.Context, e *Env) error { return restartProjectors(ctx, e, Dynamic) },
			Teardown: func(ctx context.Context, e *Env) error { return restartProjectors(ctx, e, nil) },
			Steps: []Step{
				{Fault: "kill -9 projector-orders", Count: 2, Hold: crashHold, New: kill(ProjectorOrders)},
				{Fault: "kill -9 projector-search", Count: 1, Hold: crashHold, New: kill(ProjectorSearch)},
			}},
	}
}

// Short is the suite `make test` ends with (under 3 minutes): every fault once or twice, in one
// scenario.
func Short() []Scenario {
	return []Scenario{{
		Name:     "every fault, short",
		Promise:  "each fault of the full suite, once or twice, under one workload",
		Setup:    startStandby,
		Teardown: stopStandby,
		Steps: []Step{
			{Fault: "kill -9 outbox-relay", Count: 2, Hold: crashHold, Target: CrashTarget, New: kill(Relay)},
			{Fault: "kill -9 projector-orders", Count: 2, Hold: crashHold, Target: CrashTarget, New: kill(ProjectorOrders)},
			{Fault: "kill -9 projector-search", Count: 2, Hold: crashHold, Target: CrashTarget, New: kill(ProjectorSearch)},
			{Fault: "kill -9 command", Count: 1, Hold: crashHold, New: kill(CommandAPI)},
			{Fault: "SIGSTOP relay leader", Count: 1, Hold: leaderHold, Target: TakeoverTarget, Takeover: true, New: pauseLeader},
			{Fault: "SIGSTOP opensearch", Count: 1, Hold: 3 * time.Second, New: pause(OpenSearch)},
			{Fault: "kill -9 kafka", Count: 1, Hold: crashHold, Target: KafkaTarget, New: kill(Kafka)},
			{Fault: "kill -9 postgres", Count: 1, Hold: crashHold, New: kill(Postgres)},
			{Fault: "late-committing transaction", Count: 1, Hold: 3 * time.Second, New: lateCommit},
			{Fault: "poison record", Count: 1, Hold: time.Second, New: poison},
		},
	}}
}
