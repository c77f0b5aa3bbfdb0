package rebuild

import (
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kadm"
)

func listed(topic string, offsets map[int32]int64) kadm.ListedOffsets {
	l := kadm.ListedOffsets{topic: {}}
	for p, o := range offsets {
		l[topic][p] = kadm.ListedOffset{Topic: topic, Partition: p, Offset: o}
	}
	return l
}

func TestHistory(t *testing.T) {
	starts := listed("t", map[int32]int64{2: 0, 0: 0, 1: 17})
	starts["t"][3] = kadm.ListedOffset{Topic: "t", Partition: 3, Offset: -1, Err: errors.New("NOT_LEADER_FOR_PARTITION")}
	h := historyOf("t", starts)
	want := []PartitionStart{{0, 0, ""}, {1, 17, ""}, {2, 0, ""}, {3, -1, "NOT_LEADER_FOR_PARTITION"}}
	if !reflect.DeepEqual(h.Partitions, want) {
		t.Fatalf("historyOf = %+v, want %+v (sorted by partition)", h.Partitions, want)
	}
	if lost := h.Lost(); len(lost) != 1 || lost[0].Partition != 1 {
		t.Errorf("Lost() = %+v, want partition 1 only (an error is not a loss)", lost)
	}
	if h.Complete() {
		t.Error("Complete() = true with a lost and an unknown partition")
	}
	if !historyOf("t", listed("t", map[int32]int64{0: 0, 1: 0})).Complete() {
		t.Error("Complete() = false with every partition at 0")
	}
	err := &HistoryLostError{Topic: "orders.events", Lost: []PartitionStart{{Partition: 0, Start: 5}, {Partition: 2, Start: 9}}}
	if got := err.Error(); !strings.Contains(got, "refusing to rebuild: topic orders.events no longer starts at offset 0 (partition 0 starts at offset 5, partition 2 starts at offset 9)") {
		t.Errorf("HistoryLostError = %q", got)
	}
}

func TestLagOf(t *testing.T) {
	starts := listed("t", map[int32]int64{0: 0, 1: 10, 2: 0})
	ends := listed("t", map[int32]int64{0: 100, 1: 50, 2: 30})
	committed := kadm.GroupLag{"t": {
		0: {Topic: "t", Partition: 0, Commit: kadm.Offset{At: 60}},
		1: {Topic: "t", Partition: 1, Commit: kadm.Offset{At: 4}},  // below the log start: counts from the start
		2: {Topic: "t", Partition: 2, Commit: kadm.Offset{At: -1}}, // no commit: everything
	}}
	if got := lagOf("t", starts, ends, committed); got != 40+40+30 {
		t.Errorf("lagOf = %d, want 110", got)
	}
	if got := lagOf("t", starts, ends, nil); got != 100+40+30 {
		t.Errorf("lagOf without commits (the topic's size) = %d, want 170", got)
	}
}

func TestBehind(t *testing.T) {
	resp := func(at map[int32]int64) kadm.OffsetResponses {
		r := kadm.OffsetResponses{"t": {}}
		for p, o := range at {
			r["t"][p] = kadm.OffsetResponse{Offset: kadm.Offset{Topic: "t", Partition: p, At: o}}
		}
		return r
	}
	tests := []struct {
		mine, theirs map[int32]int64
		want         bool
	}{
		{map[int32]int64{0: 5, 1: 7}, map[int32]int64{0: 5, 1: 7}, false},
		{map[int32]int64{0: 6, 1: 7}, map[int32]int64{0: 5, 1: 7}, false},
		{map[int32]int64{0: 4, 1: 7}, map[int32]int64{0: 5, 1: 7}, true},
		{map[int32]int64{0: 5}, map[int32]int64{0: 5, 1: 7}, true}, // not committed where they are
		{map[int32]int64{0: 5}, map[int32]int64{}, false},          // the live group has not committed
	}
	for _, tt := range tests {
		if got := behind("t", resp(tt.mine), resp(tt.theirs)); got != tt.want {
			t.Errorf("behind(%v, %v) = %v, want %v", tt.mine, tt.theirs, got, tt.want)
		}
	}
}
