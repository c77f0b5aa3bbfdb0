package relay

import (
	"errors"
	"testing"
	"time"
)

func TestPollingNext(t *testing.T) {
	p := Polling{MinPoll: time.Millisecond, MaxPoll: 8 * time.Millisecond, StandbyPoll: 500 * time.Millisecond,
		ErrorBackoff: 100 * time.Millisecond, MaxErrorBackoff: time.Second}
	boom := errors.New("broker down")
	tests := []struct {
		name       string
		prev       time.Duration
		n          int
		err        error
		want       time.Duration
		wantReason string
	}{
		{"full batch: next one at once", 5 * time.Millisecond, 100, nil, 0, ""},
		{"partial batch: short pause", 5 * time.Millisecond, 3, nil, time.Millisecond, ""},
		{"empty after work: start backing off", 0, 0, nil, time.Millisecond, ""},
		{"empty again: double", 2 * time.Millisecond, 0, nil, 4 * time.Millisecond, ""},
		{"empty at the cap: stay", 8 * time.Millisecond, 0, nil, 8 * time.Millisecond, ""},
		{"standby", 0, 0, ErrNotLeader, 500 * time.Millisecond, ""},
		{"first error", time.Millisecond, 0, boom, 100 * time.Millisecond, ""},
		{"repeated error: double", 300 * time.Millisecond, 0, boom, 600 * time.Millisecond, ""},
		{"error at the cap", time.Second, 0, boom, time.Second, ""},
	}
	for _, tt := range tests {
		if got := p.next(tt.prev, tt.n, 100, tt.err); got != tt.want {
			t.Errorf("%s: next(%v, %d, %v) = %v, want %v", tt.name, tt.prev, tt.n, tt.err, got, tt.want)
		}
	}
}
