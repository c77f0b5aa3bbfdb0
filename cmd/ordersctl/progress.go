package main

import (
	"fmt"
	"io"
	"os"
	"strings"
	"time"
)

// progress reports a long operation: a redrawn bar with rate and ETA on a terminal, a plain line every
// few seconds otherwise (logs, scripts).
type progress struct {
	w          io.Writer
	tty        bool
	total      int64
	unit       string
	count      int64
	start      time.Time
	lastReport time.Time
}

func newProgress(w io.Writer, total int64, unit string) *progress {
	tty := false
	if f, ok := w.(*os.File); ok {
		if fi, err := f.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
			tty = true
		}
	}
	return &progress{w: w, tty: tty, total: total, unit: unit, start: time.Now()}
}

func (p *progress) add(n int64) {
	p.count += n
	if time.Since(p.lastReport) < map[bool]time.Duration{true: 200 * time.Millisecond, false: 5 * time.Second}[p.tty] {
		return
	}
	p.lastReport = time.Now()
	p.report(false)
}

func (p *progress) done() { p.report(true) }

func (p *progress) report(final bool) {
	el := time.Since(p.start).Seconds()
	rate := float64(p.count) / max(el, 1e-9)
	eta := "?"
	if rate > 0 && p.total > p.count {
		eta = (time.Duration(float64(p.total-p.count)/rate) * time.Second).Round(time.Second).String()
	} else if p.total <= p.count {
		eta = "0s"
	}
	pct := 100 * float64(p.count) / float64(max(p.total, 1))
	if p.tty {
		filled := int(pct / 100 * 30)
		bar := strings.Repeat("#", min(filled, 30)) + strings.Repeat(".", 30-min(filled, 30))
		fmt.Fprintf(p.w, "\r[%s] %5.1f%% %d/%d %s, %.0f/s, ETA %s ", bar, pct, p.count, p.total, p.unit, rate, eta)
		if final {
			fmt.Fprintln(p.w)
		}
		return
	}
	fmt.Fprintf(p.w, "progress: %d/%d %s (%.1f%%), %.0f/s, ETA %s\n", p.count, p.total, p.unit, pct, rate, eta)
}
