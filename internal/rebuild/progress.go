package rebuild

import "time"

// Phase names what a long operation is doing. A rebuild goes through PhaseCheck, PhasePrepare,
// PhaseBackfill (only with backfill), PhaseReplay, PhaseSwitched, PhaseRetire; a failed one ends in
// PhaseAbandon. Verify goes through PhaseFold and PhaseCompare; Republish through PhaseRepublish;
// VerifySnapshots through PhaseSnapshots.
type Phase string

const (
	// PhaseCheck: checking that the events topic still holds its whole history.
	PhaseCheck Phase = "check"
	// PhasePrepare: creating the new generation (or, in place, clearing the live model and resetting
	// the projector's group).
	PhasePrepare Phase = "prepare"
	// PhaseBackfill: folding the event store into the new generation (total: events).
	PhaseBackfill Phase = "backfill"
	// PhaseReplay: consuming the topic into the generation until it has caught up (total: events).
	PhaseReplay Phase = "replay"
	// PhaseSwitched: reads are on the new generation; the rebuild consumes on until it is at least as
	// far as the live projector (search), then retires the old generation.
	PhaseSwitched Phase = "switched"
	// PhaseRetire: dropping the old generation and the rebuild's consumer group.
	PhaseRetire Phase = "retire"
	// PhaseAbandon: the rebuild failed or was interrupted; dropping what it built.
	PhaseAbandon Phase = "abandon"
	// PhaseFold: verify folds every order from the event store (total: events).
	PhaseFold Phase = "fold"
	// PhaseCompare: verify compares the folded orders with the read model (total: orders).
	PhaseCompare Phase = "compare"
	// PhaseRepublish: republish sends events from the store to the topic (total: events).
	PhaseRepublish Phase = "republish"
	// PhaseSnapshots: verifying the snapshots against the fold of their events (count: snapshots).
	PhaseSnapshots Phase = "snapshots"
)

// Level is the weight of a message.
type Level string

const (
	Info    Level = "info"
	Warning Level = "warning"
)

// Progress receives what a long operation is doing, so that its caller can show it (a bar on a
// terminal, lines in a log, a page of the console). Nothing in this package prints. Calls come from the
// goroutine that runs the operation, one at a time; an implementation shared with other goroutines
// guards itself.
type Progress interface {
	// Phase says the operation entered phase p, with total units of work (0 when it has no count).
	Phase(p Phase, total int64)
	// Advance says how many units of the current phase are done (a running count, not an increment).
	// It can pass total when the topic grew meanwhile.
	Advance(done int64)
	// Message is a line for the operator: what was found or decided, or a warning.
	Message(level Level, text string)
}

// Discard is a Progress that ignores everything.
var Discard Progress = discard{}

type discard struct{}

func (discard) Phase(Phase, int64)    {}
func (discard) Advance(int64)         {}
func (discard) Message(Level, string) {}

func orDiscard(p Progress) Progress {
	if p == nil {
		return Discard
	}
	return p
}

// Speed is the rate of a phase and its estimated time left, from its counts and how long it has
// run. ETA is 0 once done reaches total, and -1 while it cannot be estimated (nothing done yet).
func Speed(done, total int64, elapsed time.Duration) (perSecond float64, eta time.Duration) {
	if elapsed > 0 {
		perSecond = float64(done) / elapsed.Seconds()
	}
	switch {
	case done >= total:
		return perSecond, 0
	case perSecond <= 0:
		return perSecond, -1
	}
	return perSecond, time.Duration(float64(total-done) / perSecond * float64(time.Second)).Round(time.Second)
}
