package deploy_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// The local stack's scripts know their processes by pid file and command line: a pid file whose
// process died (kill -9) and whose pid the kernel gave to another process is not "running". (A fault
// run once left Kafka down: stack.sh start took a reused pid for Kafka and started nothing.)
func TestLocalScriptsDoNotTakeAnotherProcessForTheirOwn(t *testing.T) {
	other := exec.Command("sleep", "60")
	if err := other.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = other.Process.Kill(); _ = other.Wait() })
	local := t.TempDir()
	pid := []byte(strconv.Itoa(other.Process.Pid))
	for _, f := range []string{"run/kafka.pid", "run/postgres.pid", "run/opensearch.pid", "services/query.pid"} {
		if err := os.MkdirAll(filepath.Join(local, filepath.Dir(f)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(local, f), pid, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, script := range []string{"local/stack.sh", "local/services.sh"} {
		cmd := exec.Command("bash", script, "status")
		cmd.Env = append(os.Environ(), "ORDERS_LOCAL_DIR="+local)
		out, _ := cmd.CombinedOutput() // stack.sh exits 3 when a server is stopped
		for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
			// "stopped", or "not built" for a service before make build.
			if !strings.HasSuffix(line, ": stopped") && !strings.HasSuffix(line, ": not built") {
				t.Errorf("%s status: %q, want no process running (pid %s is another program's)", script, line, pid)
			}
		}
	}
}
