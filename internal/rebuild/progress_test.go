package rebuild

import (
	"testing"
	"time"
)

func TestSpeed(t *testing.T) {
	tests := []struct {
		done, total int64
		elapsed     time.Duration
		wantRate    float64
		wantETA     time.Duration
	}{
		{0, 100, 0, 0, -1},           // nothing done yet: no estimate
		{0, 100, time.Second, 0, -1}, // still nothing
		{50, 100, 10 * time.Second, 5, 10 * time.Second},
		{100, 100, 4 * time.Second, 25, 0}, // done
		{120, 100, 4 * time.Second, 30, 0}, // the topic grew past the first count
		{1, 3, 3 * time.Second, 1.0 / 3, 6 * time.Second},
		{0, 0, time.Second, 0, 0}, // nothing to do is done
	}
	for _, tt := range tests {
		rate, eta := Speed(tt.done, tt.total, tt.elapsed)
		if rate != tt.wantRate || eta != tt.wantETA {
			t.Errorf("Speed(%d, %d, %s) = %v, %s; want %v, %s", tt.done, tt.total, tt.elapsed, rate, eta, tt.wantRate, tt.wantETA)
		}
	}
}
