package rebuild

import (
	"context"
	"slices"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
)

// coordinatorWait is how long lag asks again while Kafka answers that it cannot say yet.
const coordinatorWait = 15 * time.Second

// lag is kadm's Lag of the groups, asked again for up to coordinatorWait while Kafka answers with a
// retriable error for the request or a group: a group coordinator that is not available yet (a fresh
// cluster creating its offsets topic, a broker restarting, a coordinator moving) is a matter of
// seconds, not an answer.
func lag(ctx context.Context, adm *kadm.Client, groups ...string) (kadm.DescribedGroupLags, error) {
	deadline := time.Now().Add(coordinatorWait)
	for {
		lags, err := adm.Lag(ctx, slices.Clone(groups)...) // a copy: kadm may reorder what it is given
		retry := err != nil && kerr.IsRetriable(err)
		if err == nil {
			for _, l := range lags {
				if e := l.Error(); e != nil && kerr.IsRetriable(e) {
					retry = true
				}
			}
		}
		if !retry || time.Now().After(deadline) {
			return lags, err
		}
		select {
		case <-ctx.Done():
			return lags, err
		case <-time.After(250 * time.Millisecond):
		}
	}
}
