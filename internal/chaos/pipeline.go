package chaos

import (
	"context"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/twmb/franz-go/pkg/kadm"
)

// Pipeline watches how far behind the store the topic and the projectors are: the outbox backlog
// (committed events not yet published) and each projector group's committed offsets against the
// topic's end offsets.
//
// Two readings. Caught up is strict: the outbox is empty and every group has committed every record
// of the topic; that is what the checker waits for once the workload has stopped. Under load it is
// true only now and then (a record is always on its way somewhere), so recovery is timed with Live:
// nothing in the outbox is older than Slack, and every group has committed every record the topic
// held Slack ago. A stalled or dead projector, or a relay that does not publish, is never Live.
type Pipeline struct {
	Pool   *pgxpool.Pool
	Admin  *kadm.Client
	Topic  string
	Groups []string
	// Slack is how far behind the head a live pipeline may be (0: strict).
	Slack time.Duration

	mu   sync.Mutex
	ends []endsAt // recent end offsets, oldest first
}

type endsAt struct {
	at   time.Time
	ends map[int32]int64
}

// Sample is one look at the pipeline.
type Sample struct {
	At      time.Time        // when the look was complete
	Backlog int64            // outbox rows (committed, not yet published)
	Stale   int64            // outbox rows older than Slack
	Ends    map[int32]int64  // end offset per partition
	Lag     map[string]int64 // per group: records not yet committed, summed over partitions
	// LagSlack is per group the records of the topic as it was Slack ago not yet committed; nil when
	// no look that old exists yet.
	LagSlack map[string]int64
	Err      error
}

// CaughtUp: nothing waits in the outbox and every group has committed every record of the topic.
func (s Sample) CaughtUp() bool {
	if s.Err != nil || s.Backlog != 0 {
		return false
	}
	for _, l := range s.Lag {
		if l != 0 {
			return false
		}
	}
	return true
}

// Live: nothing in the outbox is older than the slack and every group has committed what the topic
// held a slack ago.
func (s Sample) Live() bool {
	if s.Err != nil || s.Stale != 0 || s.LagSlack == nil {
		return false
	}
	for _, l := range s.LagSlack {
		if l != 0 {
			return false
		}
	}
	return true
}

func (s Sample) String() string {
	if s.Err != nil {
		return "error: " + s.Err.Error()
	}
	var parts []string
	for _, g := range slices.Sorted(maps.Keys(s.Lag)) {
		parts = append(parts, fmt.Sprintf("%s lag %d", g, s.Lag[g]))
	}
	return fmt.Sprintf("outbox %d, %s", s.Backlog, strings.Join(parts, ", "))
}

// Sample takes one look. End offsets are listed before the committed offsets are fetched, so a group
// is never reported caught up with records it had not committed when it was looked at.
func (p *Pipeline) Sample(ctx context.Context) Sample {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	s := Sample{At: time.Now(), Lag: map[string]int64{}, Ends: map[int32]int64{}}
	if err := p.Pool.QueryRow(ctx, `SELECT count(*), count(*) FILTER (WHERE created_at < clock_timestamp() - $1::interval) FROM outbox`,
		fmt.Sprintf("%d milliseconds", p.Slack.Milliseconds())).Scan(&s.Backlog, &s.Stale); err != nil {
		s.Err = fmt.Errorf("outbox backlog: %w", err)
		return s
	}
	ends, err := p.Admin.ListEndOffsets(ctx, p.Topic)
	if err == nil {
		err = ends.Error()
	}
	if err != nil {
		s.Err = fmt.Errorf("end offsets: %w", err)
		return s
	}
	listed := time.Now()
	ends.Each(func(o kadm.ListedOffset) { s.Ends[o.Partition] = o.Offset })
	if len(s.Ends) == 0 {
		s.Err = fmt.Errorf("topic %s has no partitions", p.Topic)
		return s
	}
	old := p.remember(listed, s.Ends)
	if old != nil {
		s.LagSlack = map[string]int64{}
	}
	for _, g := range p.Groups {
		committed, err := p.Admin.FetchOffsets(ctx, g)
		if err == nil {
			err = committed.Error()
		}
		if err != nil {
			s.Err = fmt.Errorf("committed offsets of %s: %w", g, err)
			return s
		}
		at := func(part int32) int64 {
			if o, ok := committed.Lookup(p.Topic, part); ok && o.At >= 0 {
				return o.At
			}
			return 0 // no commit yet: behind by everything
		}
		s.Lag[g] = 0
		for part, end := range s.Ends {
			s.Lag[g] += max(0, end-at(part))
		}
		if old != nil {
			s.LagSlack[g] = 0
			for part, end := range old {
				s.LagSlack[g] += max(0, end-at(part))
			}
		}
	}
	s.At = time.Now() // what was read holds from the end of the look on
	return s
}

// remember keeps the end offsets seen at t and returns the latest ones seen at least Slack before t,
// if they were seen at most 2×Slack before t (nil otherwise: a look much older than that would let a
// stalled group that had committed up to then pass for live).
func (p *Pipeline) remember(t time.Time, ends map[int32]int64) map[int32]int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.ends = append(p.ends, endsAt{t, ends})
	var old *endsAt
	keep := 0
	for i, e := range p.ends {
		if !e.at.After(t.Add(-p.Slack)) {
			old, keep = &p.ends[i], i // the newest look that is old enough; older ones are no longer needed
		}
	}
	p.ends = p.ends[keep:]
	if old == nil || old.at.Before(t.Add(-2*p.Slack)) {
		return nil
	}
	return old.ends
}

// Recovery samples every interval from now until the pipeline is Live and returns the time from
// since (the heal) to that sample, or fails after timeout.
func (p *Pipeline) Recovery(ctx context.Context, since time.Time, interval, timeout time.Duration) (time.Duration, Sample, error) {
	deadline := time.Now().Add(timeout)
	for {
		s := p.Sample(ctx)
		if s.Live() {
			return s.At.Sub(since), s, nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return time.Since(since), s, fmt.Errorf("not live %s after the heal: %s", time.Since(since).Round(time.Millisecond), s)
		}
		select {
		case <-ctx.Done():
		case <-time.After(interval):
		}
	}
}

// WaitCaughtUp samples every interval until the pipeline is caught up and returns that sample, or
// fails after timeout with the last sample.
func (p *Pipeline) WaitCaughtUp(ctx context.Context, interval, timeout time.Duration) (Sample, error) {
	deadline := time.Now().Add(timeout)
	for {
		s := p.Sample(ctx)
		if s.CaughtUp() {
			return s, nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return s, fmt.Errorf("not caught up after %s: %s", timeout, s)
		}
		select {
		case <-ctx.Done():
		case <-time.After(interval):
		}
	}
}

// Settle waits until the system has provably caught up after a scenario, when the workload has
// stopped. A group that stalls (a restarted member waiting for a dead one's session, a projector
// stuck on a batch) also has no lag once nothing new arrives, so quiet proves nothing: Settle places
// canary orders through the API until every partition of the topic has grown, then waits until the
// outbox is empty and every group has committed past those end offsets, which only a group that
// consumes every partition can do. It returns the canaries' count.
func (p *Pipeline) Settle(ctx context.Context, w *Workload, timeout time.Duration) (int, error) {
	deadline := time.Now().Add(timeout)
	before := p.Sample(ctx)
	for before.Err != nil {
		if time.Now().After(deadline) || ctx.Err() != nil {
			return 0, before.Err
		}
		time.Sleep(200 * time.Millisecond)
		before = p.Sample(ctx)
	}
	rnd := rand.New(rand.NewPCG(rand.Uint64(), 7))
	canaries := 0
	for grown := map[int32]bool{}; len(grown) < len(before.Ends); {
		if err := ctx.Err(); err != nil {
			return canaries, err
		}
		if time.Now().After(deadline) || canaries > 20*len(before.Ends) {
			return canaries, fmt.Errorf("canary orders did not reach every partition (%d of %d partitions after %d orders)", len(grown), len(before.Ends), canaries)
		}
		if _, ok := w.PlaceOrder(ctx, rnd); ok {
			canaries++
		}
		s, err := p.WaitCaughtUp(ctx, 50*time.Millisecond, max(time.Until(deadline), time.Second))
		if err != nil {
			return canaries, fmt.Errorf("after %d canary orders: %w", canaries, err)
		}
		for part, end := range s.Ends {
			if end > before.Ends[part] {
				grown[part] = true
			}
		}
	}
	return canaries, nil
}
