package buildinfo

import (
	"runtime"
	"testing"
)

func TestReadPrefersStampedValues(t *testing.T) {
	oldV, oldC := Version, Commit
	t.Cleanup(func() { Version, Commit = oldV, oldC })
	Version, Commit = "v9.8.7", "abc123"
	got := Read()
	if got.Version != "v9.8.7" || got.Commit != "abc123" || got.GoVersion != runtime.Version() {
		t.Fatalf("Read() = %+v, want the stamped version and commit and %s", got, runtime.Version())
	}
}

func TestReadNeverEmpty(t *testing.T) {
	oldV, oldC := Version, Commit
	t.Cleanup(func() { Version, Commit = oldV, oldC })
	Version, Commit = "", ""
	got := Read()
	if got.Version == "" || got.Commit == "" {
		t.Fatalf("Read() = %+v, want a version and a commit even when nothing was stamped", got)
	}
}
