package chaos

import (
	"strings"
	"testing"
	"time"
)

func TestWriteReport(t *testing.T) {
	crash := Scenario{Name: "projector-orders crash", Promise: "p1",
		Steps: []Step{{Fault: "kill -9 projector-orders", Count: 2, Hold: time.Second, Target: CrashTarget}}}
	dynamic := Scenario{Name: "dynamic", Promise: "p2", Comparison: true,
		Steps: []Step{{Fault: "kill -9 projector-orders", Count: 1, Hold: time.Second}}}
	ok := Result{Scenario: crash, Verdict: Verdict{Commands: map[Outcome]int{OK: 90, Failed: 3, Unknown: 2}, UnknownApplied: 1},
		Faults: []FaultResult{{Fault: "kill -9 projector-orders", Recovery: time.Second}, {Fault: "kill -9 projector-orders", Recovery: 3 * time.Second}}}
	slow := Result{Scenario: dynamic, Verdict: Verdict{Commands: map[Outcome]int{OK: 10}},
		Faults: []FaultResult{{Fault: "kill -9 projector-orders", Recovery: 44 * time.Second}}}
	var b strings.Builder
	if err := WriteReport(&b, RunInfo{Command: "make chaos", Slack: 250 * time.Millisecond}, []Result{ok, slow}); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{
		"**Verdict: every promise held.**",
		"| projector-orders crash | p1 | kill -9 projector-orders ×2 | 90 / 3 / 2 / 0 | 0 | 0 | 1 | 2.00 s / 3.00 s | ≤ 5.00 s | ok |",
		"| static (`PROJECTOR_INSTANCE_ID`, the default) | 2 | 2.00 s | 3.00 s |",
		"| dynamic (`PROJECTOR_INSTANCE_ID=none`, as before issue 11) | 1 | 44.00 s | 44.00 s |",
		"recovery after each heal (s): 1.00, 3.00",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("the report lacks %q", want)
		}
	}
	ok.Verdict.Findings = []Finding{{PromiseOK, "lost one"}}
	b.Reset()
	_ = WriteReport(&b, RunInfo{Command: "make chaos"}, []Result{ok})
	if out := b.String(); !strings.Contains(out, "SOME PROMISES WERE BROKEN") || !strings.Contains(out, "  - "+PromiseOK+": lost one") {
		t.Errorf("a report with a finding does not say so:\n%s", out)
	}
}
