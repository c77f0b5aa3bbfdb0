package web

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/orders-oss/orders/internal/rebuild"
)

// jobs are the rebuilds and verifies the console runs, one of a kind at a time, kept in memory until
// the console restarts (the work itself is internal/rebuild's: the same as ordersctl's).
type jobs struct {
	mu   sync.Mutex
	next int
	all  map[string]*job
}

func newJobs() *jobs { return &jobs{all: map[string]*job{}} }

// job is one run; it is the rebuild.Progress of its work.
type job struct {
	ID, Kind, By string

	mu       sync.Mutex
	started  time.Time
	finished time.Time
	phase    rebuild.Phase
	phaseAt  time.Time
	total    int64
	done     int64
	messages []string
	err      string
	result   *rebuild.Result
	report   *rebuild.Report
}

// jobView is a job as the page (and its progress JSON) shows it.
type jobView struct {
	ID         string          `json:"id"`
	Kind       string          `json:"kind"`
	By         string          `json:"by"`
	Running    bool            `json:"running"`
	Started    time.Time       `json:"started"`
	Finished   time.Time       `json:"finished,omitzero"`
	Phase      string          `json:"phase"`
	Done       int64           `json:"done"`
	Total      int64           `json:"total"`
	Percent    int64           `json:"percent"`
	PerSecond  float64         `json:"per_second"`
	ETA        string          `json:"eta"`
	Messages   []string        `json:"messages"`
	Error      string          `json:"error,omitempty"`
	Result     *rebuild.Result `json:"result,omitempty"`
	Report     *rebuild.Report `json:"report,omitempty"`
	Elapsed    string          `json:"elapsed"`
	Successful bool            `json:"successful"`
}

// start runs work in the background under a new job, unless a job of the same kind is running.
func (js *jobs) start(kind, by string, work func(ctx context.Context, j *job) error) (*job, error) {
	js.mu.Lock()
	defer js.mu.Unlock()
	for _, j := range js.all {
		if j.Kind == kind && j.running() {
			return nil, fmt.Errorf("a %s started by %s is still running (job %s)", kind, j.By, j.ID)
		}
	}
	js.next++
	j := &job{ID: strconv.Itoa(js.next), Kind: kind, By: by, started: time.Now()}
	js.all[j.ID] = j
	go func() {
		// The job outlives the request that started it; it is bounded on its own.
		ctx, cancel := context.WithTimeout(context.Background(), 6*time.Hour)
		defer cancel()
		err := work(ctx, j)
		j.mu.Lock()
		defer j.mu.Unlock()
		j.finished = time.Now()
		if err != nil {
			j.err = err.Error()
		}
	}()
	return j, nil
}

func (js *jobs) get(id string) *job {
	js.mu.Lock()
	defer js.mu.Unlock()
	return js.all[id]
}

func (js *jobs) list() []jobView {
	js.mu.Lock()
	all := make([]*job, 0, len(js.all))
	for _, j := range js.all {
		all = append(all, j)
	}
	js.mu.Unlock()
	out := make([]jobView, len(all))
	for i, j := range all {
		out[i] = j.view()
	}
	sort.Slice(out, func(a, b int) bool { return out[a].Started.After(out[b].Started) })
	return out
}

func (j *job) running() bool { j.mu.Lock(); defer j.mu.Unlock(); return j.finished.IsZero() }

func (j *job) Phase(p rebuild.Phase, total int64) {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.phase, j.total, j.done, j.phaseAt = p, total, 0, time.Now()
}

func (j *job) Advance(done int64) { j.mu.Lock(); j.done = done; j.mu.Unlock() }

func (j *job) Message(l rebuild.Level, text string) {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.messages = append(j.messages, string(l)+": "+text)
}

func (j *job) setResult(r rebuild.Result) { j.mu.Lock(); j.result = &r; j.mu.Unlock() }
func (j *job) setReport(r rebuild.Report) { j.mu.Lock(); j.report = &r; j.mu.Unlock() }

func (j *job) view() jobView {
	j.mu.Lock()
	defer j.mu.Unlock()
	v := jobView{ID: j.ID, Kind: j.Kind, By: j.By, Running: j.finished.IsZero(), Started: j.started, Finished: j.finished,
		Phase: string(j.phase), Done: j.done, Total: j.total, Messages: append([]string(nil), j.messages...), Error: j.err,
		Result: j.result, Report: j.report}
	if v.Total > 0 {
		v.Percent = min(100, v.Done*100/v.Total)
	}
	var eta time.Duration
	v.PerSecond, eta = rebuild.Speed(j.done, j.total, time.Since(j.phaseAt))
	switch {
	case !v.Running || j.total == 0:
	case eta < 0:
		v.ETA = "estimating"
	default:
		v.ETA = eta.Round(time.Second).String()
	}
	end := j.finished
	if end.IsZero() {
		end = time.Now()
	}
	v.Elapsed = end.Sub(j.started).Round(time.Second).String()
	v.Successful = !v.Running && v.Error == "" && (v.Report == nil || v.Report.OK())
	return v
}
