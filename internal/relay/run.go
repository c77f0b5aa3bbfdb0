package relay

import (
	"context"
	"errors"
	"fmt"
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
// (with backoff) and log. It returns nil when ctx ends, or ErrInstanceInUse when another live process
// runs as the same instance.
//
// A batch that has begun when ctx ends is finished rather than abandoned, so that a rolling restart
// sends no duplicates; it still gets at most ShutdownGrace, after which it is abandoned (its rows stay
// in the outbox for the next leader).
func (r *Relay) Run(ctx context.Context, p Polling) error {
	batchCtx, abandon := context.WithCancel(context.WithoutCancel(ctx))
	defer abandon()
	stopGrace := context.AfterFunc(ctx, func() { time.AfterFunc(r.ShutdownGrace, abandon) })
	defer stopGrace()
	defer r.Metrics.Leader.Set(0)

	defer r.lease.release()

	var wait time.Duration
	var lastErr string
	for ctx.Err() == nil {
		n, err := r.RunOnce(batchCtx)
		if errors.Is(err, ErrInstanceInUse) {
			return err
		}
		if err != nil && ctx.Err() != nil {
			if errors.Is(err, ErrNotLeader) {
				return nil
			}
			r.Log.Warn("batch abandoned at shutdown; its rows stay in the outbox", "error", err.Error())
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
		case <-time.After(wait):
		}
	}
	return nil
}

// WaitForOutbox returns once the outbox table exists (nil) or when ctx ends (its error). The command
// service owns the migrations; the relay only waits for them, so the services may start in any order.
// It retries with backoff up to maxBackoff and logs while it waits.
func (r *Relay) WaitForOutbox(ctx context.Context, maxBackoff time.Duration) error {
	backoff := 50 * time.Millisecond
	for retrying := false; ; retrying = true {
		var exists bool
		err := r.Pool.QueryRow(ctx, "SELECT to_regclass('outbox') IS NOT NULL").Scan(&exists)
		if err == nil && exists {
			if retrying {
				r.Log.Info("the outbox table exists; starting")
			}
			return nil
		}
		if ctx.Err() != nil {
			return fmt.Errorf("wait for the outbox table: %w", ctx.Err())
		}
		switch {
		case err != nil:
			r.Log.Warn("waiting for Postgres", "error", err.Error(), "retry_in", backoff.String())
		case !retrying || backoff == maxBackoff:
			// Said once at first, then at every retry once the backoff is at its cap.
			r.Log.Warn("waiting for the outbox table (the command service applies the migrations)", "retry_in", backoff.String())
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("wait for the outbox table: %w", ctx.Err())
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, maxBackoff)
	}
}

// WatchBacklog refreshes the backlog gauges every interval until ctx ends. Both come from one query
// over the outbox, which holds only unpublished rows (small unless the relay is behind).
func (r *Relay) WatchBacklog(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	var failing bool
	for {
		var n int64
		var age float64
		err := r.Pool.QueryRow(ctx, `SELECT count(*), COALESCE(EXTRACT(EPOCH FROM clock_timestamp() - min(created_at)), 0)::float8 FROM outbox`).Scan(&n, &age)
		switch {
		case err == nil:
			r.Metrics.Backlog.Set(float64(n))
			r.Metrics.OldestAge.Set(age)
			failing = false
		case ctx.Err() == nil && !failing: // the publish loop reports outages; say it here only once
			r.Log.Warn("refresh backlog gauges", "error", err.Error())
			failing = true
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
