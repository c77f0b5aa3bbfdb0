package chaos

import (
	"fmt"
	"io"
	"slices"
	"strings"
	"time"
)

// RunInfo says how a suite was run, for the report.
type RunInfo struct {
	Command  string // as typed: "make chaos"
	Args     string // the program's own command line
	Suite    string
	Date     time.Time
	Duration time.Duration
	Machine  string
	Commit   string
	Go       string
	Clients  int
	Rate     float64
	Token    string
	Run      string // the run id every command id and unique value carries
	Slack    time.Duration
	Healthy  string // the stack after the suite
}

// Stats are the median and max of some durations.
type Stats struct {
	N           int
	Median, Max time.Duration
}

// Summarize returns the median (the mean of the middle two for an even count) and the max.
func Summarize(ds []time.Duration) Stats {
	if len(ds) == 0 {
		return Stats{}
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	st := Stats{N: len(s), Max: s[len(s)-1], Median: s[len(s)/2]}
	if len(s)%2 == 0 {
		st.Median = (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
	return st
}

func (s Stats) String() string {
	if s.N == 0 {
		return "-"
	}
	return fmt.Sprintf("%s / %s", secs(s.Median), secs(s.Max))
}

func secs(d time.Duration) string { return fmt.Sprintf("%.2f s", d.Seconds()) }

// measured returns, for each step of a scenario (by its fault), the durations its target applies to.
func measured(r Result) map[string][]time.Duration {
	out := map[string][]time.Duration{}
	takeover := map[string]bool{}
	for _, s := range r.Scenario.Steps {
		takeover[s.Fault] = s.Takeover
	}
	for _, f := range r.Faults {
		if f.Err != "" {
			continue
		}
		d := f.Recovery
		if takeover[f.Fault] {
			d = f.Takeover
		}
		out[f.Fault] = append(out[f.Fault], d)
	}
	return out
}

// WriteReport writes RELIABILITY.md.
func WriteReport(w io.Writer, info RunInfo, results []Result) error {
	var b strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	ok := true
	for _, r := range results {
		ok = ok && r.OK()
	}
	p("# Reliability\n\n")
	p("What the system promises under faults, and what a run of the fault suite measured. Written by `%s`\n", info.Command)
	p("(`cmd/orderschaos`, `internal/chaos`); run it again rather than editing this file.\n\n")
	verdict := "every promise held"
	if !ok {
		verdict = "**SOME PROMISES WERE BROKEN** (findings below)"
	}
	p("**Verdict: %s.**\n\n", verdict)

	p("## How it was run\n\n")
	p("| | |\n|---|---|\n")
	p("| command | `%s` (`%s`) |\n", info.Command, info.Args)
	p("| date | %s (%s in all) |\n", info.Date.UTC().Format("2006-01-02 15:04 MST"), info.Duration.Round(time.Second))
	p("| machine | %s |\n", info.Machine)
	p("| code | commit %s, %s |\n", info.Commit, info.Go)
	p("| stack | `deploy/local` (`make up`): Postgres 15, Kafka 4.1 (KRaft, one node), OpenSearch 2.19, the five services with their defaults |\n")
	p("| workload | %d concurrent HTTP clients, about %.0f commands/s in all; run id `%s` (in every command id and unique value) |\n", info.Clients, info.Rate, info.Run)
	p("| credentials | %s |\n", info.Token)
	p("| afterwards | %s |\n\n", info.Healthy)

	p("## Summary\n\n")
	p("Commands: ok / failed (a definite 4xx) / unknown (timeout, 5xx, connection broken after sending) / unsent (connection refused, retried for up to 15 s, then given up). ")
	p("Lost: acknowledged commands without their event, and stored events missing from the topic. Duplicated: commands with more than one event, or a unique value recorded twice. ")
	p("Unknown applied: unknown outcomes whose event is in the store (at most one each is allowed). Recovery: median / max, seconds from the heal (see below).\n\n")
	p("| scenario | the promise it checks | faults | commands ok / failed / unknown / unsent | lost | duplicated | unknown applied | recovery (median / max) | target | verdict |\n")
	p("|---|---|---|---|---|---|---|---|---|---|\n")
	for _, r := range results {
		v := r.Verdict
		steps, m := r.Scenario.Steps, measured(r)
		var faults, rec, target []string
		for _, s := range steps {
			faults = append(faults, fmt.Sprintf("%s ×%d", s.Fault, s.Count))
			label := ""
			if len(steps) > 1 {
				label = s.Fault + ": "
			}
			what := ""
			if s.Takeover {
				what = " (takeover)"
			}
			rec = append(rec, label+Summarize(m[s.Fault]).String()+what)
			switch {
			case r.Scenario.Comparison:
				target = append(target, label+"none (comparison)")
			case s.Target > 0:
				target = append(target, label+"≤ "+secs(s.Target))
			default:
				target = append(target, label+"none set")
			}
		}
		verdict := "ok"
		if !r.OK() {
			verdict = fmt.Sprintf("**%d findings**", len(v.Findings))
		}
		p("| %s | %s | %s | %d / %d / %d / %d | %d | %d | %d | %s | %s | %s |\n", r.Scenario.Name, r.Scenario.Promise, strings.Join(faults, "<br>"),
			v.Commands[OK], v.Commands[Failed], v.Commands[Unknown], v.Commands[Refused], v.Lost+v.Topic.Missing, v.Duplicated,
			v.UnknownApplied, strings.Join(rec, "<br>"), strings.Join(target, "<br>"), verdict)
	}
	p("\n")
	writeComparison(&b, results)

	p("## What each scenario checks\n\n")
	p("Each scenario runs the workload, injects its faults one after another (each lasts a few seconds, then is healed: the killed process is started again by `deploy/local/stack.sh start NAME` or `services.sh start`, a stopped one gets SIGCONT, a held transaction commits), stops the workload, waits until the pipeline has caught up, and then checks, against the whole event store and the whole topic:\n\n")
	for _, pr := range []string{PromiseOK, PromiseFailed, PromiseUnknown, PromiseUnique, PromiseTopic, PromiseModels, PromiseParking, PromiseLate} {
		p("- %s;\n", pr)
	}
	p("- and the recovery after each fault, against its target.\n\n")
	p("Every command carries a unique correlation id (its events' `metadata.correlation_id`) and a unique value in its data (a sku, a payment reference, a tracking number, a cancellation reason; a placement also an `Idempotency-Key`), so its effect can be found in the store. The read models are compared with the fold of the store by `internal/rebuild`'s verify; orders a poison record parked are held at the version before it, and nothing else may be parked.\n\n")
	p("**Recovery** is the time from the heal until the pipeline is live again: no outbox row older than %s, and each projector group has committed every record the topic held %s earlier (offsets from Kafka's admin API, end offsets read before committed ones). Under load a strict \"lag 0\" is true only now and then, since some record is always on its way; a projector that is stalled or dead, or a relay that does not publish, is never live. For the paused relay leader the figure is the **takeover**: from the SIGSTOP until the standby publishes and the pipeline is live.\n\n", info.Slack, info.Slack)
	p("**Caught up** (before the checks) is strict: the workload has stopped, the suite places canary orders until every partition of the topic has grown, and waits until the outbox is empty and both groups have committed up to those end offsets. A stalled group has no lag once nothing new arrives; it cannot commit past a canary, so quiet is never taken for settled.\n\n")

	p("## Scenarios\n\n")
	for _, r := range results {
		v := r.Verdict
		p("### %s\n\n%s.\n\n", r.Scenario.Name, r.Scenario.Promise)
		p("- %s, %d commands (ok %d, failed %d, unknown %d of which %d applied, unsent %d), %d canary orders at the end\n",
			r.Duration.Round(time.Second), v.Commands[OK]+v.Commands[Failed]+v.Commands[Unknown]+v.Commands[Refused],
			v.Commands[OK], v.Commands[Failed], v.Commands[Unknown], v.UnknownApplied, v.Commands[Refused], r.Canaries)
		steps, m := r.Scenario.Steps, measured(r)
		for _, s := range steps {
			var ds []string
			for _, d := range m[s.Fault] {
				ds = append(ds, fmt.Sprintf("%.2f", d.Seconds()))
			}
			if s.Takeover {
				var lease []string
				for _, f := range r.Faults {
					if f.Fault == s.Fault && f.Err == "" {
						lease = append(lease, fmt.Sprintf("%.2f", f.Lease.Seconds()))
					}
				}
				p("- %s ×%d, each for %s: the other relay held the lease after (s): %s; the pipeline was live after (s): %s\n",
					s.Fault, s.Count, s.Hold, strings.Join(lease, ", "), strings.Join(ds, ", "))
				continue
			}
			p("- %s ×%d, each for %s: recovery after each heal (s): %s\n", s.Fault, s.Count, s.Hold, strings.Join(ds, ", "))
		}
		for _, f := range r.Faults {
			if f.Err != "" {
				p("- %s at %s: %s\n", f.Fault, f.Injected.Format("15:04:05"), f.Err)
			}
		}
		t, b := v.Topic, r.TopicBefore
		p("- the topic gained %d records: %d events, %d sent again (at least once: a batch that failed after some of its records were written goes out again whole), %d poison\n",
			t.Records-b.Records, t.Events-b.Events, t.Redelivered-b.Redelivered, t.Poison-b.Poison)
		p("- checked after it: %d events in the store, %d records in the topic; %d events missing from it, %d orders out of order\n",
			v.StoreEvents, t.Records, t.Missing, t.OutOfOrder)
		if len(v.Findings) == 0 {
			p("- findings: none\n\n")
			continue
		}
		p("- **findings**:\n")
		for _, f := range v.Findings {
			p("  - %s: %s\n", f.Promise, f.Detail)
		}
		p("\n")
	}
	p("## What this suite does not cover\n\n")
	p("- One node of each server, on one machine: no broker or replica failover, no network partition between machines (the relay's partition from Postgres is tested in `internal/relay` with a TCP proxy), no clock skew.\n")
	p("- Crashes of whole processes only: no full disk, no slow disk, no corrupted files; OpenSearch is paused, not killed; the query API is not faulted (it only reads).\n")
	p("- Faults one at a time, each healed before the next.\n")
	p("- The workload is one principal at a moderate rate; it measures correctness and recovery under faults, not throughput (BENCHMARKS.md).\n")
	_, err := io.WriteString(w, b.String())
	return err
}

// writeComparison sets the projector crashes with static membership beside the same crash with
// dynamic membership, when both ran.
func writeComparison(b *strings.Builder, results []Result) {
	var static, dynamic []time.Duration
	for _, r := range results {
		for _, f := range r.Faults {
			if f.Err != "" || (f.Fault != "kill -9 projector-orders" && f.Fault != "kill -9 projector-search") {
				continue
			}
			if r.Scenario.Comparison {
				dynamic = append(dynamic, f.Recovery)
			} else {
				static = append(static, f.Recovery)
			}
		}
	}
	if len(static) == 0 || len(dynamic) == 0 {
		return
	}
	s, d := Summarize(static), Summarize(dynamic)
	fmt.Fprintf(b, "### Static against dynamic group membership\n\n")
	fmt.Fprintf(b, "Recovery after kill -9 of a projector, measured the same way (same workload, restarted at once by `services.sh start`):\n\n")
	fmt.Fprintf(b, "| membership | crashes | median | max |\n|---|---|---|---|\n")
	fmt.Fprintf(b, "| static (`PROJECTOR_INSTANCE_ID`, the default) | %d | %s | %s |\n", s.N, secs(s.Median), secs(s.Max))
	fmt.Fprintf(b, "| dynamic (`PROJECTOR_INSTANCE_ID=none`, as before issue 11) | %d | %s | %s |\n\n", d.N, secs(d.Median), secs(d.Max))
	fmt.Fprintf(b, "With dynamic membership the restarted member waits for its dead predecessor's session to expire (`PROJECTOR_SESSION_TIMEOUT`, 45 s) before the group gives it partitions.\n\n")
}
