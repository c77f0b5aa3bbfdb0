// Package loadgen runs a closed-loop load (N workers, each doing one operation after another) for a
// fixed count or duration and summarises it: throughput and latency percentiles. Benchmarks use it for
// both the system under test and its raw baseline, so the two are measured the same way.
package loadgen

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Result summarises one run.
type Result struct {
	Workers  int
	Ops      int64
	Errors   int64
	Elapsed  time.Duration
	P50, P99 time.Duration
	FirstErr error
}

// PerSecond is the throughput of successful operations.
func (r Result) PerSecond() float64 {
	if r.Elapsed <= 0 {
		return 0
	}
	return float64(r.Ops-r.Errors) / r.Elapsed.Seconds()
}

func (r Result) String() string {
	return fmt.Sprintf("%d workers: %.0f ops/s, p50 %s, p99 %s, %d errors of %d", r.Workers, r.PerSecond(),
		r.P50.Round(10*time.Microsecond), r.P99.Round(10*time.Microsecond), r.Errors, r.Ops)
}

// Run calls op from workers goroutines until d has passed or ctx ends. op gets the worker number and a
// per-worker sequence number, so it can build unique inputs without sharing state.
func Run(ctx context.Context, workers int, d time.Duration, op func(ctx context.Context, worker, seq int) error) Result {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		lat      = make([]time.Duration, 0, 1<<16)
		ops, bad atomic.Int64
		firstErr error
	)
	start := time.Now()
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			local := make([]time.Duration, 0, 1<<12)
			for seq := 0; ctx.Err() == nil; seq++ {
				t0 := time.Now()
				err := op(ctx, w, seq)
				if ctx.Err() != nil { // cut off by the deadline: not a real answer
					break
				}
				local = append(local, time.Since(t0))
				ops.Add(1)
				if err != nil {
					bad.Add(1)
					mu.Lock()
					if firstErr == nil {
						firstErr = err
					}
					mu.Unlock()
				}
			}
			mu.Lock()
			lat = append(lat, local...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	r := Result{Workers: workers, Ops: ops.Load(), Errors: bad.Load(), Elapsed: time.Since(start), FirstErr: firstErr}
	r.P50, r.P99 = Percentile(lat, 0.50), Percentile(lat, 0.99)
	return r
}

// Percentile returns the q-th (0..1) percentile of the durations (nearest rank); 0 for none.
func Percentile(ds []time.Duration, q float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	i := int(q*float64(len(s))+0.5) - 1
	return s[max(0, min(i, len(s)-1))]
}

// Median returns the median of xs (0 for none).
func Median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}
