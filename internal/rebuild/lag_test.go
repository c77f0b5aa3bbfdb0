package rebuild

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// A group coordinator that is not available yet (a fresh cluster: the first `make test` on a new
// machine failed so) is asked again; an error that will not pass is returned at once.
func TestLagWaitsForTheCoordinator(t *testing.T) {
	for _, tt := range []struct {
		name      string
		code      int16 // the DescribeGroups answer for the first refusals
		refusals  int32
		wantErr   bool
		wantCalls int32
	}{
		{"coordinator not available, then it is", kerr.CoordinatorNotAvailable.Code, 3, false, 4},
		{"coordinator loading, then it is", kerr.CoordinatorLoadInProgress.Code, 2, false, 3},
		{"not authorized: no retry", kerr.GroupAuthorizationFailed.Code, 1, true, 1},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, topic))
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			var calls atomic.Int32
			c.ControlKey(int16(kmsg.DescribeGroups), func(req kmsg.Request) (kmsg.Response, error, bool) {
				c.KeepControl()
				n := calls.Add(1)
				if n > tt.refusals {
					return nil, nil, false // kfake answers
				}
				r := req.(*kmsg.DescribeGroupsRequest)
				resp := r.ResponseKind().(*kmsg.DescribeGroupsResponse)
				for _, g := range r.Groups {
					dg := kmsg.NewDescribeGroupsResponseGroup()
					dg.Group, dg.ErrorCode = g, tt.code
					resp.Groups = append(resp.Groups, dg)
				}
				return resp, nil, true
			})
			cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...), kgo.RequestRetries(0))
			if err != nil {
				t.Fatal(err)
			}
			defer cl.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			lags, err := lag(ctx, kadm.NewClient(cl), "g")
			if l, ok := lags["g"]; err == nil && ok {
				err = l.Error()
			}
			// Past the refusals kfake answers for itself (an unknown group: GROUP_ID_NOT_FOUND, where Kafka
			// says Dead); what matters is whether the refusal is what came back.
			if refused := errors.Is(err, kerr.ErrorForCode(tt.code)); refused != tt.wantErr {
				t.Errorf("lag = %v; the refusal returned: %v, want %v", err, refused, tt.wantErr)
			}
			if got := calls.Load(); got != tt.wantCalls {
				t.Errorf("DescribeGroups asked %d times, want %d", got, tt.wantCalls)
			}
		})
	}
}
