package main

import (
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/orders-oss/orders/internal/rebuild"
)

// phaseTitles are the lines that open a phase; phases without one only show their messages.
var phaseTitles = map[rebuild.Phase]string{
	rebuild.PhaseBackfill:  "backfill from the event store:",
	rebuild.PhaseReplay:    "replay the topic:",
	rebuild.PhaseAbandon:   "dropping what the rebuild built",
	rebuild.PhaseFold:      "fold the event store:",
	rebuild.PhaseCompare:   "compare with the read model:",
	rebuild.PhaseRepublish: "republish:",
	rebuild.PhaseSnapshots: "verify the snapshots:",
}

// progress renders a rebuild.Progress: per counted phase, a redrawn bar with rate and ETA on a
// terminal, a plain line every few seconds otherwise (logs, scripts); messages as lines.
type progress struct {
	w     io.Writer
	tty   bool
	every time.Duration

	unit         string
	total, count int64
	counting     bool // the current phase has a count to show
	drawn        bool // a bar is on the current terminal line
	start        time.Time
	lastReport   time.Time
}

var _ rebuild.Progress = (*progress)(nil)

func newProgress(w io.Writer) *progress {
	tty := false
	if f, ok := w.(*os.File); ok {
		if fi, err := f.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
			tty = true
		}
	}
	p := &progress{w: w, tty: tty, every: 5 * time.Second}
	if tty {
		p.every = 200 * time.Millisecond
	}
	return p
}

func (p *progress) Phase(ph rebuild.Phase, total int64) {
	p.done()
	if title, ok := phaseTitles[ph]; ok {
		fmt.Fprintln(p.w, title)
	}
	p.unit = "events"
	if ph == rebuild.PhaseCompare {
		p.unit = "orders"
	}
	p.total, p.count, p.counting = total, 0, total > 0
	p.start, p.lastReport = time.Now(), time.Now()
}

func (p *progress) Advance(done int64) {
	p.count = done
	if !p.counting || time.Since(p.lastReport) < p.every {
		return
	}
	p.lastReport = time.Now()
	p.report(false)
}

func (p *progress) Message(level rebuild.Level, text string) {
	p.endLine()
	if level == rebuild.Warning {
		text = "warning: " + text
	}
	fmt.Fprintln(p.w, text)
}

// done shows the final count of the current phase; call it once the operation has returned.
func (p *progress) done() {
	if p.counting {
		p.report(true)
	}
	p.counting = false
}

// endLine ends a bar being drawn, so that a message gets a line of its own.
func (p *progress) endLine() {
	if p.drawn {
		fmt.Fprintln(p.w)
		p.drawn = false
	}
}

func (p *progress) report(final bool) {
	rate, eta := rebuild.Speed(p.count, p.total, time.Since(p.start))
	etaText := "?"
	if eta >= 0 {
		etaText = eta.String()
	}
	pct := 100 * float64(p.count) / float64(max(p.total, 1))
	if p.tty {
		filled := min(int(pct/100*30), 30)
		bar := strings.Repeat("#", filled) + strings.Repeat(".", 30-filled)
		fmt.Fprintf(p.w, "\r[%s] %5.1f%% %d/%d %s, %.0f/s, ETA %s ", bar, pct, p.count, p.total, p.unit, rate, etaText)
		p.drawn = true
		if final {
			p.endLine()
		}
		return
	}
	fmt.Fprintf(p.w, "progress: %d/%d %s (%.1f%%), %.0f/s, ETA %s\n", p.count, p.total, p.unit, pct, rate, etaText)
}
