package loadgen

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestPercentile(t *testing.T) {
	var ds []time.Duration
	for i := 1; i <= 100; i++ {
		ds = append(ds, time.Duration(i)*time.Millisecond)
	}
	if got := Percentile(ds, 0.5); got != 50*time.Millisecond {
		t.Errorf("Percentile(0.5) = %v, want 50ms", got)
	}
	if got := Percentile(ds, 0.99); got != 99*time.Millisecond {
		t.Errorf("Percentile(0.99) = %v, want 99ms", got)
	}
	if got := Percentile(nil, 0.5); got != 0 {
		t.Errorf("Percentile(nil) = %v, want 0", got)
	}
	if got := Median([]float64{3, 1, 2, 10}); got != 2.5 {
		t.Errorf("Median = %v, want 2.5", got)
	}
}

func TestRunCountsOpsAndErrors(t *testing.T) {
	boom := errors.New("boom")
	r := Run(context.Background(), 4, 50*time.Millisecond, func(ctx context.Context, w, seq int) error {
		time.Sleep(time.Millisecond)
		if seq%2 == 1 {
			return boom
		}
		return nil
	})
	if r.Ops == 0 || r.Errors == 0 || r.Errors > r.Ops {
		t.Fatalf("Run = %+v, want some ops and some (not more) errors", r)
	}
	if !errors.Is(r.FirstErr, boom) {
		t.Errorf("FirstErr = %v, want boom", r.FirstErr)
	}
	if r.PerSecond() <= 0 {
		t.Errorf("PerSecond = %v, want > 0", r.PerSecond())
	}
}
