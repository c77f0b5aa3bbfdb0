package relay

import (
	"context"
	"errors"
	"time"
)

// Polling: a full batch is followed at once by the next; an empty one backs off from MinPoll, doubling,
// up to MaxPoll, so an idle relay costs little and a busy one never waits. A standby checks for the
// lock every StandbyPoll; errors back off from ErrorBackoff up to MaxErrorBackoff.
type Polling struct {
	MinPoll, MaxPoll, StandbyPoll, ErrorBackoff, MaxErrorBackoff time.Duration
}

// DefaultPolling is what the service uses unless configured.
var DefaultPolling = Polling{MinPoll: time.Millisecond, MaxPoll: 50 * time.Millisecond, StandbyPoll: 500 * time.Millisecond,
	ErrorBackoff: 100 * time.Millisecond, MaxErrorBackoff: 5 * time.Second}

// next returns how long to wait after a RunOnce that published n of batch events (or failed with err),
// given the previous wait.
func (p Polling) next(prev time.Duration, n, batch int, err error) time.Duration {
	switch {
	case errors.Is(err, ErrNotLeader):
		return p.StandbyPoll
	case err != nil:
		if prev < p.ErrorBackoff {
			return p.ErrorBackoff
		}
		return min(2*prev, p.MaxErrorBackoff)
	case n >= batch:
		return 0
	case n > 0:
		return p.MinPoll
	default:
		if prev < p.MinPoll {
			return p.MinPoll
		}
		return min(2*prev, p.MaxPoll)
	}
}

// Run publishes until ctx ends. It never gives up: Kafka or Postgres being away only makes it wait
// (with backoff) and log. It returns nil when ctx ends.
func (r *Relay) Run(ctx context.Context, p Polling) error {
	var wait time.Duration
	var lastErr string
	for {
		n, err := r.RunOnce(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if err != nil && !errors.Is(err, ErrNotLeader) {
			if err.Error() != lastErr { // log a changed error at once, a repeated one not at every retry
				r.Log.Warn("publish failed; will retry", "error", err.Error())
				lastErr = err.Error()
			}
		} else if lastErr != "" && err == nil {
			r.Log.Info("publishing again")
			lastErr = ""
		}
		wait = p.next(wait, n, r.BatchSize, err)
		if wait == 0 {
			continue
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(wait):
		}
	}
}

// WatchBacklog refreshes the backlog gauges every interval until ctx ends.
func (r *Relay) WatchBacklog(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		var n int64
		var age float64
		err := r.Pool.QueryRow(ctx, `SELECT count(*), COALESCE(EXTRACT(EPOCH FROM clock_timestamp() - min(created_at)), 0)::float8 FROM outbox`).Scan(&n, &age)
		if err == nil {
			r.Metrics.Backlog.Set(float64(n))
			r.Metrics.OldestAge.Set(age)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
