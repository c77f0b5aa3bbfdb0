package web

import (
	"bufio"
	"context"
	"fmt"
	"math"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/orders-oss/orders/internal/rebuild"
)

// lagHistory keeps the last samples of each projector group's total lag, for the chart of the
// projectors page (drawn on the server as SVG: no script, no chart library).
type lagHistory struct {
	mu      sync.Mutex
	max     int
	samples map[string][]lagSample
}

type lagSample struct {
	At  time.Time
	Lag int64
}

func newLagHistory(max int) *lagHistory {
	return &lagHistory{max: max, samples: map[string][]lagSample{}}
}

func (h *lagHistory) add(at time.Time, groups []rebuild.GroupStatus) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, g := range groups {
		s := append(h.samples[g.Group], lagSample{At: at, Lag: g.Lag})
		if len(s) > h.max {
			s = s[len(s)-h.max:]
		}
		h.samples[g.Group] = s
	}
}

// chart is one group's lag over the last minutes, as an SVG polyline in a 300×60 box.
type chart struct {
	Group  string
	Points string
	Max    int64
	Now    int64
	Since  string
	Label  string
}

func (h *lagHistory) charts() []chart {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []chart
	for g, s := range h.samples {
		if len(s) == 0 {
			continue
		}
		c := chart{Group: g, Now: s[len(s)-1].Lag, Since: time.Since(s[0].At).Round(time.Second).String()}
		for _, p := range s {
			c.Max = max(c.Max, p.Lag)
		}
		span := s[len(s)-1].At.Sub(s[0].At).Seconds()
		var pts []string
		for _, p := range s {
			x := 300.0
			if span > 0 {
				x = 300 * p.At.Sub(s[0].At).Seconds() / span
			}
			y := 58.0
			if c.Max > 0 {
				y = 58 - 56*float64(p.Lag)/float64(c.Max)
			}
			pts = append(pts, fmt.Sprintf("%.1f,%.1f", x, y))
		}
		c.Points = strings.Join(pts, " ")
		c.Label = fmt.Sprintf("Lag of %s over the last %s: now %d records, at most %d", g, c.Since, c.Now, c.Max)
		out = append(out, c)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Group < out[j].Group })
	return out
}

// freshness is a projector's time from an event's commit to its read-model write, from the histogram
// projector_freshness_seconds it exports (since the projector started).
type freshness struct {
	Error    string
	Count    uint64
	P50, P99 string
}

// readFreshness scrapes a projector's /metrics and estimates p50 and p99 from the histogram's buckets
// (the upper bound of the bucket the quantile falls in, as Prometheus's histogram_quantile would
// bound it).
func readFreshness(ctx context.Context, client *http.Client, base string) freshness {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimRight(base, "/")+"/metrics", nil)
	if err != nil {
		return freshness{Error: err.Error()}
	}
	res, err := client.Do(req)
	if err != nil {
		return freshness{Error: "the projector does not answer: " + err.Error()}
	}
	defer res.Body.Close()
	type bucket struct {
		le    float64
		count uint64
	}
	var buckets []bucket
	sc := bufio.NewScanner(res.Body)
	for sc.Scan() {
		line := sc.Text()
		rest, ok := strings.CutPrefix(line, `projector_freshness_seconds_bucket{le="`)
		if !ok {
			continue
		}
		leStr, countStr, ok := strings.Cut(rest, `"} `)
		if !ok {
			continue
		}
		le, err1 := strconv.ParseFloat(leStr, 64)
		if leStr == "+Inf" {
			le, err1 = math.Inf(1), nil
		}
		n, err2 := strconv.ParseFloat(countStr, 64)
		if err1 == nil && err2 == nil {
			buckets = append(buckets, bucket{le, uint64(n)})
		}
	}
	if len(buckets) == 0 {
		return freshness{Error: "no freshness histogram at " + base}
	}
	sort.Slice(buckets, func(i, j int) bool { return buckets[i].le < buckets[j].le })
	total := buckets[len(buckets)-1].count
	f := freshness{Count: total}
	q := func(phi float64) string {
		if total == 0 {
			return "no events yet"
		}
		rank := uint64(math.Ceil(phi * float64(total)))
		for _, b := range buckets {
			if b.count >= rank {
				if math.IsInf(b.le, 1) {
					return fmt.Sprintf("over %gs", buckets[len(buckets)-2].le)
				}
				return fmt.Sprintf("≤ %gs", b.le)
			}
		}
		return "?"
	}
	f.P50, f.P99 = q(0.5), q(0.99)
	return f
}
