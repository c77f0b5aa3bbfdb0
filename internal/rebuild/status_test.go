package rebuild

import (
	"errors"
	"reflect"
	"testing"

	"github.com/twmb/franz-go/pkg/kadm"
)

func TestGroupStatus(t *testing.T) {
	lag := kadm.GroupLag{
		"t": {
			1: {Topic: "t", Partition: 1, Commit: kadm.Offset{At: 7}, End: kadm.ListedOffset{Offset: 10}, Lag: 3},
			0: {Topic: "t", Partition: 0, Commit: kadm.Offset{At: -1}, End: kadm.ListedOffset{Offset: 4}, Lag: 4},
		},
		"other": {0: {Topic: "other", Partition: 0, Lag: 99}},
	}
	got := groupStatus("g", "t", kadm.DescribedGroupLag{State: "Stable", Members: make([]kadm.DescribedGroupMember, 2), Lag: lag}, true)
	want := GroupStatus{Group: "g", Exists: true, State: "Stable", Members: 2, Lag: 7,
		Partitions: []PartitionLag{{Partition: 0, Committed: -1, End: 4, Lag: 4}, {Partition: 1, Committed: 7, End: 10, Lag: 3}}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("groupStatus = %+v, want %+v", got, want)
	}
	for _, tt := range []struct {
		l  kadm.DescribedGroupLag
		ok bool
	}{{kadm.DescribedGroupLag{}, false}, {kadm.DescribedGroupLag{State: "Dead"}, true}, {kadm.DescribedGroupLag{}, true}} {
		if g := groupStatus("g", "t", tt.l, tt.ok); g.Exists || g.Partitions == nil {
			t.Errorf("groupStatus(%+v, %v) = %+v, want a group that does not exist (with an empty list)", tt.l, tt.ok, g)
		}
	}
	g := groupStatus("g", "t", kadm.DescribedGroupLag{State: "Empty", FetchErr: errors.New("NOT_COORDINATOR")}, true)
	if !g.Exists || g.Error != "NOT_COORDINATOR" {
		t.Errorf("groupStatus with a fetch error = %+v", g)
	}
}
